using System.Globalization;
using System.Text;
using Cluster.Compute.Training;

namespace Cluster.Coordinator.Reports;

/// <summary>
/// A chart of loss and accuracy (or RMSE) per epoch, as SVG, or as PNG when the file name ends in .png. The layout
/// is computed once and drawn by either backend, so both show the same thing.
/// </summary>
public static class TrainingPlot
{
    private const int Width = 960;
    private const int Height = 420;
    private static readonly (byte R, byte G, byte B) Train = (59, 125, 221);
    private static readonly (byte R, byte G, byte B) Validation = (142, 68, 173);
    private static readonly (byte R, byte G, byte B) Test = (230, 126, 34);
    private static readonly (byte R, byte G, byte B) Axis = (90, 98, 115);
    private static readonly (byte R, byte G, byte B) Grid = (225, 228, 234);

    /// <summary>Writes the plot of <paramref name="history"/> to <paramref name="path"/>.</summary>
    public static void Write(string path, IReadOnlyList<EpochRecord> history, string title)
    {
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        if (path.EndsWith(".png", StringComparison.OrdinalIgnoreCase))
        {
            var png = new PngWriter(Width, Height);
            Draw(new PngCanvas(png), history, title);
            File.WriteAllBytes(full, png.Encode());
        }
        else
        {
            var svg = new SvgCanvas();
            Draw(svg, history, title);
            File.WriteAllText(full, svg.ToString());
        }
    }

    private static void Draw(ICanvas canvas, IReadOnlyList<EpochRecord> history, string title)
    {
        canvas.Text(20, 12, title, Axis, 2);
        var regression = history.Count > 0 && history[0].TrainAccuracy is null;
        Panel(canvas, 20, 50, Width / 2 - 30, Height - 70, "loss", history,
            [("train", Train, e => e.TrainLoss), ("validation", Validation, e => e.ValidationLoss), ("test", Test, e => e.TestLoss)]);
        Panel(canvas, Width / 2 + 10, 50, Width / 2 - 30, Height - 70, regression ? "rmse" : "accuracy", history, regression
            ? [("train", Train, e => e.TrainRmse), ("test", Test, e => e.TestRmse)]
            : [("train", Train, e => e.TrainAccuracy), ("validation", Validation, e => e.ValidationAccuracy), ("test", Test, e => e.TestAccuracy)]);
    }

    private static void Panel(ICanvas c, int x, int y, int w, int h, string name, IReadOnlyList<EpochRecord> history, (string Label, (byte, byte, byte) Color, Func<EpochRecord, double?> Value)[] series)
    {
        var present = series.Where(s => history.Any(e => s.Value(e) is { } v && double.IsFinite(v))).ToArray();
        var values = present.SelectMany(s => history.Select(s.Value)).Where(v => v is { } d && double.IsFinite(d)).Select(v => v!.Value).ToList();
        double lo = values.Count == 0 ? 0 : values.Min(), hi = values.Count == 0 ? 1 : values.Max();
        if (hi - lo < 1e-9)
        {
            hi = lo + 1;
        }

        var pad = (hi - lo) * 0.08;
        lo -= pad;
        hi += pad;
        int left = x + 60, right = x + w - 10, top = y + 30, bottom = y + h - 30;
        double X(double epoch) => history.Count <= 1 ? (left + right) / 2.0 : left + (epoch - 1) / (history.Count - 1) * (right - left);
        double Y(double v) => bottom - (v - lo) / (hi - lo) * (bottom - top);
        c.Text(x + 60, y - 8, name, Axis, 2);
        for (var i = 0; i <= 4; i++)
        {
            var v = lo + (hi - lo) * i / 4;
            var py = Y(v);
            c.Line(left, py, right, py, Grid, 1);
            c.Text(x, (int)py - 3, v.ToString(Math.Abs(hi) < 10 ? "0.000" : "0.0", CultureInfo.InvariantCulture), Axis, 1);
        }

        c.Line(left, bottom, right, bottom, Axis, 1);
        c.Line(left, top, left, bottom, Axis, 1);
        var step = Math.Max(1, history.Count / 10);
        for (var e = 1; e <= history.Count; e += step)
        {
            c.Text((int)X(e) - 3, bottom + 8, e.ToString(CultureInfo.InvariantCulture), Axis, 1);
        }

        c.Text((right + left) / 2 - 15, bottom + 20, "epoch", Axis, 1);
        var legendX = left + 10;
        foreach (var s in present)
        {
            var points = history.Select((e, i) => (X: X(i + 1), V: s.Value(e))).Where(p => p.V is { } v && double.IsFinite(v)).Select(p => (p.X, Y: Y(p.V!.Value))).ToList();
            for (var i = 1; i < points.Count; i++)
            {
                c.Line(points[i - 1].X, points[i - 1].Y, points[i].X, points[i].Y, s.Color, 2);
            }

            foreach (var p in points)
            {
                c.Dot(p.X, p.Y, s.Color);
            }

            c.Line(legendX, top - 10, legendX + 16, top - 10, s.Color, 3);
            c.Text(legendX + 20, top - 13, s.Label, Axis, 1);
            legendX += 30 + PngWriter.TextWidth(s.Label);
        }
    }

    private interface ICanvas
    {
        void Line(double x0, double y0, double x1, double y1, (byte R, byte G, byte B) color, int width);

        void Dot(double x, double y, (byte R, byte G, byte B) color);

        void Text(int x, int y, string text, (byte R, byte G, byte B) color, int scale);
    }

    private sealed class PngCanvas(PngWriter png) : ICanvas
    {
        public void Line(double x0, double y0, double x1, double y1, (byte R, byte G, byte B) color, int width) => png.Line(x0, y0, x1, y1, color, width);

        public void Dot(double x, double y, (byte R, byte G, byte B) color) => png.Rect((int)x - 2, (int)y - 2, (int)x + 2, (int)y + 2, color);

        public void Text(int x, int y, string text, (byte R, byte G, byte B) color, int scale) => png.Text(x, y, text, color, scale);
    }

    private sealed class SvgCanvas : ICanvas
    {
        private readonly StringBuilder _body = new();

        public void Line(double x0, double y0, double x1, double y1, (byte R, byte G, byte B) color, int width) =>
            _body.Append(CultureInfo.InvariantCulture, $"<line x1=\"{x0:0.#}\" y1=\"{y0:0.#}\" x2=\"{x1:0.#}\" y2=\"{y1:0.#}\" stroke=\"{Hex(color)}\" stroke-width=\"{width}\"/>\n");

        public void Dot(double x, double y, (byte R, byte G, byte B) color) =>
            _body.Append(CultureInfo.InvariantCulture, $"<circle cx=\"{x:0.#}\" cy=\"{y:0.#}\" r=\"3\" fill=\"{Hex(color)}\"/>\n");

        public void Text(int x, int y, string text, (byte R, byte G, byte B) color, int scale) =>
            _body.Append(CultureInfo.InvariantCulture, $"<text x=\"{x}\" y=\"{y + 7 * scale}\" font-family=\"sans-serif\" font-size=\"{9 * scale + 2}\" fill=\"{Hex(color)}\">{System.Security.SecurityElement.Escape(text)}</text>\n");

        public override string ToString() =>
            $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{Width}\" height=\"{Height}\" viewBox=\"0 0 {Width} {Height}\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n{_body}</svg>\n";

        private static string Hex((byte R, byte G, byte B) c) => $"#{c.R:x2}{c.G:x2}{c.B:x2}";
    }
}
