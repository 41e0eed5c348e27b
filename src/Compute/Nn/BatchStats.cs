namespace Cluster.Compute;

/// <summary>Sums over a set of samples: loss, correct predictions, squared error, and how many samples.</summary>
public readonly record struct BatchStats(double LossSum, long Correct, double SquaredErrorSum, long Count)
{
    /// <summary>Adds two sets of sums.</summary>
    public static BatchStats operator +(BatchStats a, BatchStats b) =>
        new(a.LossSum + b.LossSum, a.Correct + b.Correct, a.SquaredErrorSum + b.SquaredErrorSum, a.Count + b.Count);

    /// <summary>Mean loss per sample.</summary>
    public double MeanLoss => Count == 0 ? double.NaN : LossSum / Count;

    /// <summary>Fraction of correct predictions.</summary>
    public double Accuracy => Count == 0 ? double.NaN : (double)Correct / Count;

    /// <summary>Root mean squared error per output, given the outputs per sample.</summary>
    public double Rmse(int outputs) => Count == 0 ? double.NaN : Math.Sqrt(SquaredErrorSum / (Count * (double)outputs));
}
