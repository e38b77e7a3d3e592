using Akka.Actor;
using Caas.Actors.Common;
using Caas.Actors.Conversations;
using Caas.Actors.Media;
using Caas.Streams.Media;

namespace Caas.Streams.Pipeline;

/// <summary>
/// Resolves an attachment message's file for the pipeline's attach stage, the same for REST, the hub, bulk and Kafka:
/// the Media entity of <c>(tenant, media id)</c> must hold a ready file of the message's conversation. A media id may
/// also be a resumable upload's id (the client knows it before the file id): a complete upload resolves to its file,
/// one still uploading (or assembling, or failed) is a conflict. Another tenant's or another conversation's file, a
/// deleted or unknown one, and another conversation's upload all answer 404 <c>not_found</c> alike.
/// </summary>
public sealed class AttachmentResolver(IActorRef media, IUploadSessions? uploads, TimeSpan askTimeout)
{
    /// <summary>The content with the file's id and metadata, or the <see cref="Rejection"/>.</summary>
    public async Task<object> ResolveAsync(IngestMessage m, CancellationToken ct = default)
    {
        var content = m.Content;
        var fileId = content.Attachment!.MediaId;
        if (fileId.StartsWith("u_", StringComparison.Ordinal) && uploads is not null)
        {
            var upload = await uploads.GetAsync(m.TenantId, fileId, ct);
            if (upload is null || upload.Session.ConversationId != m.ConversationId) return Rejection.NotFound("file");
            if (upload.State != UploadState.Complete)
                return Rejection.Conflict("The file's upload is not complete; send the message once it is.");
            fileId = upload.Session.FileId;
        }
        object reply;
        try
        {
            reply = await media.Ask<object>(new GetMedia(m.TenantId, fileId), askTimeout, ct);
        }
        catch (AskTimeoutException)
        {
            return new Rejection(ErrorCodes.Overloaded, "The cluster did not answer in time; retry with the same message_id.", RetryAfterSeconds: 1);
        }
        switch (reply)
        {
            case MediaFile f when f.TenantId == m.TenantId && f.ConversationId == m.ConversationId:
                if (f.State != MediaFile.Ready) return Rejection.Conflict("The file is not ready.");
                if (content.Type != "file" && content.Type != f.Kind)
                    return Rejection.Invalid("content.type", $"The file is {f.Kind}: send it as \"{f.Kind}\" or \"file\".");
                return content with
                {
                    Attachment = new MessageAttachment(f.FileId, new AttachedMedia(f.FileName, f.ContentType, f.Size, f.Sha256, f.Width, f.Height,
                        f.DurationMs, ThumbnailUrlOf(f))),
                };
            case MediaFile:
                return Rejection.NotFound("file");
            case Rejection r:
                return r;
            default:
                return new Rejection(ErrorCodes.Overloaded, "No answer from the file's entity; retry with the same message_id.", RetryAfterSeconds: 1);
        }
    }

    /// <summary>
    /// The file's thumbnail link. Thumbnails are made off the request path just after the upload, so a message sent at
    /// once may come before its thumbnail: an image or a video gets the link unless its thumbnail was skipped for good
    /// (too many pixels, undecodable, no ffmpeg), and the route answers 404 until the thumbnail exists.
    /// </summary>
    private static string? ThumbnailUrlOf(MediaFile f) =>
        f.Thumbnail is not null || (f.ThumbnailSkipped is null && f.Kind is "image" or "video")
            ? $"/v1/media/files/{f.FileId}/thumbnail"
            : null;
}
