using System.Collections.Immutable;
using System.Text;
using System.Text.Json;
using Caas.Actors.Conversations;
using Caas.Enrichment;
using Caas.Enrichment.Attachments;
using Caas.Streams.Media;
using Prometheus;

namespace Caas.Streams.Pipeline;

/// <summary>
/// The attachment enrichers (OCR, document text, speech: <see cref="IEnricher.NeedsAttachment"/>) of a deferred
/// attachment message, run by the enrichment projection, never on the acknowledgement path. The file's bytes come from
/// the <see cref="IMediaStore"/>, at most <c>maxBytes</c> of them: a larger file is never loaded, each enricher answers
/// its refusal (<see cref="ExtractionErrors.TooLarge"/>). A file that is gone (deleted, erased) gets "not applicable"
/// (<see cref="Missing"/>) from each. Each enricher sits behind its own circuit breaker (<see cref="EnricherBreaker"/>,
/// as the text enrichers do) with a call timeout above the enrichers' own limits (OCR and speech time themselves out),
/// so a slow or broken tool degrades, never stalls: a call that throws or is still running at the call timeout is a
/// failure; after <c>breaker-max-failures</c> in a row the enricher is skipped (<c>breaker_open</c>) for
/// <c>breaker-reset</c>, then one trial call decides. A stop asked by the caller (shutdown) is no failure.
/// </summary>
public sealed class AttachmentEnrichment
{
    /// <summary>The reason an attachment enricher gives when the file's bytes are no longer in the store.</summary>
    public const string Missing = "attachment_missing";

    private static readonly Counter Degraded = Metrics.CreateCounter("caas_enrichment_attachment_degraded_total",
        "Attachment messages that went on without an attachment enricher's result.", "enricher", "why");

    private readonly (IEnricher Enricher, EnricherBreaker Breaker)[] _enrichers;
    private readonly IMediaStore _store;
    private readonly long _maxBytes;
    private readonly TimeSpan _callTimeout;
    private readonly TimeProvider _time;

    public AttachmentEnrichment(IEnumerable<IEnricher> enrichers, IMediaStore store, long maxBytes, TimeSpan callTimeout,
        PipelineSettings settings, TimeProvider? time = null)
    {
        _store = store;
        _maxBytes = maxBytes;
        _callTimeout = callTimeout;
        _time = time ?? TimeProvider.System;
        _enrichers = enrichers.Where(e => e.NeedsAttachment).Select(e =>
        {
            var name = e.Name;
            return (e, new EnricherBreaker(settings.BreakerMaxFailures, settings.BreakerReset, _time,
                onOpen: () => EnrichStage.BreakerOpen.WithLabels(name).Set(1), onClose: () => EnrichStage.BreakerOpen.WithLabels(name).Set(0)));
        }).ToArray();
    }

    public bool Any => _enrichers.Length > 0;

    /// <summary>Whether the named enricher's breaker refuses calls now (open, or half-open with its trial out).</summary>
    public bool IsBreakerOpen(string enricher) => _enrichers.Any(e => e.Enricher.Name == enricher && e.Breaker.IsOpen);

    /// <summary>The attachment enrichers' outputs and degraded names, and the text they took out of the file (empty when none).</summary>
    public async Task<(ImmutableArray<EnricherOutput> Results, ImmutableArray<string> Degraded, string Text)> EnrichAsync(string tenantId,
        string conversationId, string senderId, MessageAttachment attachment, DateTimeOffset postedAt, CancellationToken ct = default)
    {
        var results = ImmutableArray.CreateBuilder<EnricherOutput>();
        var degraded = ImmutableArray.CreateBuilder<string>();
        var text = new StringBuilder();
        if (_enrichers.Length == 0) return (results.ToImmutable(), degraded.ToImmutable(), "");

        var size = await _store.SizeAsync(tenantId, attachment.MediaId, ct);
        byte[]? bytes = null;
        if (size is { } s && s <= _maxBytes) bytes = await ReadAsync(tenantId, attachment.MediaId, s, ct);

        foreach (var (enricher, breaker) in _enrichers)
        {
            object payload;
            if (size is null || (size <= _maxBytes && bytes is null))
                payload = new NotApplicablePayload(true, Missing);
            else if (bytes is null)
                payload = new AttachmentTextPayload(false,
                    ExtractedText.Failure(enricher.Name, ExtractionErrors.TooLarge, $"the file is {size} bytes; the limit is {_maxBytes}"));
            else
            {
                var input = new EnrichmentInput(tenantId, conversationId, senderId, "", postedAt,
                    Attachment: new Attachment(bytes, attachment.Media?.ContentType ?? "application/octet-stream", attachment.Media?.FileName));
                if (!breaker.TryEnter(out var trial))
                {
                    degraded.Add(enricher.Name);
                    Degraded.WithLabels(enricher.Name, "breaker_open").Inc();
                    continue;
                }
                EnrichmentResult result;
                using (var limit = new CancellationTokenSource(_callTimeout, _time))
                using (var call = CancellationTokenSource.CreateLinkedTokenSource(ct, limit.Token))
                {
                    try
                    {
                        // Not awaited past the call timeout even when the enricher ignores its token.
                        result = await enricher.EnrichAsync(input, call.Token).AsTask().WaitAsync(call.Token);
                        breaker.Succeeded(trial);
                    }
                    catch (OperationCanceledException) when (ct.IsCancellationRequested)
                    {
                        // Stopped by the caller (shutdown): no verdict on the enricher; its trial, if this was one, is open again.
                        if (trial) breaker.Failed(trial);
                        throw;
                    }
                    catch (Exception e)
                    {
                        breaker.Failed(trial);
                        var why = e is OperationCanceledException or TimeoutException ? "over_budget" : "failed";
                        degraded.Add(enricher.Name);
                        Degraded.WithLabels(enricher.Name, why).Inc();
                        continue;
                    }
                }
                payload = result.Payload;
                results.Add(Output(result.Enricher, result.Version, payload));
                if (payload is AttachmentTextPayload { Extracted: { Ok: true, Text: { Length: > 0 } found } })
                    text.Append(text.Length > 0 ? "\n" : "").Append(found.Trim());
                continue;
            }
            results.Add(Output(enricher.Name, enricher.Version, payload));
        }
        return (results.ToImmutable(), degraded.ToImmutable(), text.ToString());
    }

    private static EnricherOutput Output(string name, string version, object payload) =>
        new(name, version, JsonSerializer.SerializeToElement(payload, payload.GetType(), EnrichmentJson.Options));

    /// <summary>Exactly <paramref name="size"/> bytes (at most the limit), or null when the object is gone.</summary>
    private async Task<byte[]?> ReadAsync(string tenantId, string fileId, long size, CancellationToken ct)
    {
        await using var stream = await _store.OpenReadAsync(tenantId, fileId, 0, size, ct);
        if (stream is null) return null;
        var buffer = new byte[size];
        var read = 0;
        while (read < buffer.Length)
        {
            var n = await stream.ReadAsync(buffer.AsMemory(read), ct);
            if (n == 0) break;
            read += n;
        }
        return read == buffer.Length ? buffer : null;
    }
}
