using Caas.Streams.Search;
using Caas.Web.Media;

namespace Caas.Web.Api;

/// <summary>A file search hit as the API shows it (the <c>files</c> section of <c>GET /v1/search</c>).</summary>
public static class SearchFilesView
{
    public static object View(FileHit f) => new
    {
        file_id = f.FileId,
        conversation_id = f.ConversationId,
        message_id = f.MessageId,
        seq = f.Seq,
        file_name = f.FileName,
        content_type = f.ContentType,
        size = f.Size,
        created_at = Views.Utc(f.CreatedAt),
        thumbnail_url = f.HasThumbnail ? MediaUploads.ThumbnailUrl(f.FileId) : null,
        highlights = f.Highlights.Select(h => new { field = h.Field, fragment = h.Fragment, ranges = h.Ranges }),
    };
}
