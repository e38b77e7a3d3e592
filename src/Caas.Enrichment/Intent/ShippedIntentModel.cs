namespace Caas.Enrichment.Intent;

/// <summary>
/// The shipped intent model of a running node and where it stands (<see cref="State"/>, shown by <c>/health</c>).
/// A model saved in the model directory is loaded in the background; without one, and with
/// <see cref="EnrichmentOptions.AutotrainIntent"/>, it is trained from the shipped data on a low-priority background
/// thread (about a minute), saved there for the next start, and used as soon as it is ready. Until then intent answers
/// "not applicable", as before; the node never waits for it.
/// </summary>
public sealed class ShippedIntentModel
{
    public const string Loading = "loading";
    public const string Training = "training";
    public const string Ready = "ready";
    /// <summary>No model saved and autotraining is off (CAAS_INTENT_AUTOTRAIN=0).</summary>
    public const string Off = "off";
    public const string NoTrainingData = "no_training_data";
    public const string Failed = "failed";

    private IntentModel? _model;
    private volatile string _state;

    public IntentModel? Model => Volatile.Read(ref _model);
    public string State => _state;

    private ShippedIntentModel(string state) => _state = state;

    /// <summary>Starts loading or training in the background and returns at once.</summary>
    public static ShippedIntentModel Start(EnrichmentOptions options, Action<string, Exception?> log)
    {
        var directory = EnrichmentRegistry.IntentDirectory(options);
        if (IntentModel.Exists(directory))
        {
            var loading = new ShippedIntentModel(Loading);
            loading.Run(() => IntentModel.Load(directory), $"shipped intent model loaded from {directory}",
                $"the shipped intent model in {directory} did not load", priority: ThreadPriority.Normal, log);
            return loading;
        }
        if (!options.AutotrainIntent)
        {
            log($"no shipped intent model in {directory} and CAAS_INTENT_AUTOTRAIN=0: intent answers not applicable (run caas train)", null);
            return new ShippedIntentModel(Off);
        }
        if (options.DataDirectory is not { } data || EnrichmentRegistry.IntentTrainingData(data).Count == 0)
        {
            log($"no shipped intent model in {directory} and no intent training data under '{options.DataDirectory}': intent answers not applicable", null);
            return new ShippedIntentModel(NoTrainingData);
        }
        var training = new ShippedIntentModel(Training);
        log($"no shipped intent model in {directory}: training it from the shipped data in the background (about a minute); intent answers not applicable until it is ready", null);
        training.Run(() => EnrichmentRegistry.TrainShippedIntent(data, directory, log: null),
            $"shipped intent model trained and saved to {directory}; intent is ready",
            "training the shipped intent model failed; intent answers not applicable", ThreadPriority.BelowNormal, log);
        return training;
    }

    private void Run(Func<IntentModel> work, string done, string failed, ThreadPriority priority, Action<string, Exception?> log)
    {
        // A thread of its own: a minute of training must not hold a thread-pool thread the web edge needs.
        new Thread(() =>
        {
            try
            {
                var model = work();
                model.WarmUp(Environment.ProcessorCount);
                Volatile.Write(ref _model, model);
                _state = Ready;
                log(done, null);
            }
            catch (Exception e)
            {
                _state = Failed;
                log(failed, e);
            }
        }) { IsBackground = true, Name = "shipped-intent-model", Priority = priority }.Start();
    }
}
