using System.Numerics.Tensors;
using System.Reflection;
using Microsoft.ML;
using Microsoft.ML.Calibrators;
using Microsoft.ML.Data;
using Microsoft.ML.Trainers;

namespace Caas.Enrichment.Intent;

/// <summary>
/// The shipped intent model's last step (one Platt-calibrated linear SVM per intent, probabilities normalised to sum to
/// one) computed here from the model's own weights, instead of by ML.NET's one-versus-all scorer. That scorer runs a
/// <c>Parallel.For</c> over the intents for every prediction, so each message became a burst of thread-pool work items
/// (151 of them for CLINC150), context switches and per-intent delegate calls on the cores the pipeline needs. Here a
/// message's score is one pass over its non-zero features, each adding its contiguous row of per-intent weights
/// (features × intents, laid out by feature), then the calibration and the normalisation ML.NET applies, in the same
/// order. Sums are in a different order than ML.NET's vectorised dot products, so a probability can differ from
/// ML.NET's in its last bits (tested to 1e-5). Models of another kind (maximum entropy, the multiclass SVM) have no head
/// and keep ML.NET's scorer.
/// </summary>
internal sealed class LinearIntentHead
{
    private readonly int _intents;
    private readonly int _features;
    private readonly float[] _weights;
    private readonly float[] _bias;
    private readonly double[] _slope;
    private readonly double[] _offset;

    private LinearIntentHead(int intents, int features, float[] weights, float[] bias, double[] slope, double[] offset)
    {
        (_intents, _features, _weights, _bias, _slope, _offset) = (intents, features, weights, bias, slope, offset);
    }

    public int Intents => _intents;

    public int Features => _features;

    /// <summary>Bytes the weights take (features × intents floats).</summary>
    public long WeightBytes => (long)_weights.Length * sizeof(float);

    /// <summary>
    /// Splits a fitted intent pipeline into its featurizer (every step but the last) and a head read out of its last
    /// step, or null when that step is not a one-versus-all of Platt-calibrated linear binary models.
    /// </summary>
    public static (ITransformer Featurizer, LinearIntentHead Head)? Split(ITransformer model, int featureCount)
    {
        try
        {
            return TrySplit(model, featureCount);
        }
        catch (Exception e) when (e is TargetInvocationException or InvalidOperationException or ArgumentException or NotSupportedException)
        {
            return null; // a model this reading does not understand keeps ML.NET's scorer
        }
    }

    private static (ITransformer Featurizer, LinearIntentHead Head)? TrySplit(ITransformer model, int featureCount)
    {
        if (featureCount <= 0 || model is not IEnumerable<ITransformer> chain) return null;
        var steps = chain.ToArray();
        if (steps.Length < 2 || steps[^1] is not IPredictionTransformer<object> { Model: OneVersusAllModelParameters ova }) return null;
        // ML.NET 5 keeps the per-intent models internal (SubModelParameters); read through reflection, and without
        // them (another ML.NET) there is no head and ML.NET's scorer is used.
        if (typeof(OneVersusAllModelParameters).GetProperty("SubModelParameters", BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic)
                ?.GetValue(ova) is not IEnumerable<object> models) return null;
        var binaries = models.ToArray();
        if (binaries.Length == 0) return null;
        var intents = binaries.Length;
        var weights = new float[(long)featureCount * intents];
        var (bias, slope, offset) = (new float[intents], new double[intents], new double[intents]);
        for (var k = 0; k < intents; k++)
        {
            if (Property<LinearBinaryModelParameters>(binaries[k], "SubModel") is not { } linear) return null;
            if (Property<PlattCalibrator>(binaries[k], "Calibrator") is not { } platt) return null;
            var w = linear.Weights;
            if (w.Count != featureCount) return null;
            for (var f = 0; f < featureCount; f++) weights[(long)f * intents + k] = w[f];
            (bias[k], slope[k], offset[k]) = (linear.Bias, platt.Slope, platt.Offset);
        }
        return (new TransformerChain<ITransformer>(steps[..^1]), new LinearIntentHead(intents, featureCount, weights, bias, slope, offset));
    }

    // The calibrated model's parts: its generic base declares them and its subclasses redeclare them, so look by name.
    private static T? Property<T>(object owner, string name) where T : class =>
        owner.GetType().GetProperties(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic)
            .Where(p => p.Name == name && p.GetIndexParameters().Length == 0)
            .Select(p => p.GetValue(owner))
            .OfType<T>()
            .FirstOrDefault();

    /// <summary>The intents' probabilities for one featurized message (as ML.NET's one-versus-all scorer gives them).</summary>
    public float[] Score(in VBuffer<float> features)
    {
        if (features.Length != _features)
            throw new ArgumentException($"expected {_features} features, got {features.Length}", nameof(features));
        var scores = new float[_intents];
        var values = features.GetValues();
        var indices = features.GetIndices();
        var weights = _weights.AsSpan();
        for (var i = 0; i < values.Length; i++)
        {
            var value = values[i];
            if (value == 0) continue;
            var feature = features.IsDense ? i : indices[i];
            TensorPrimitives.MultiplyAdd(weights.Slice(feature * _intents, _intents), value, scores, scores);
        }
        // Calibrated (Platt: 1 / (1 + exp(slope · margin + offset))), then normalised to sum to one as ML.NET does:
        // NaN left out of the sum, negatives clamped to zero.
        double sum = 0;
        for (var k = 0; k < _intents; k++)
        {
            var margin = _bias[k] + scores[k];
            var p = float.IsNaN(margin) ? margin : (float)(1 / (1 + Math.Exp(_slope[k] * margin + _offset[k])));
            if (float.IsNaN(p)) { scores[k] = p; continue; }
            if (p < 0) p = 0;
            scores[k] = p;
            sum += p;
        }
        if (sum > 0)
            for (var k = 0; k < _intents; k++) scores[k] = (float)(scores[k] / sum);
        return scores;
    }
}
