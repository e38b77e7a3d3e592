using Caas.Actors.Common;
using Caas.Actors.Media;

namespace Caas.Actors.Tests;

public sealed class MediaDeciderTests
{
    private static readonly DateTimeOffset Now = new(2026, 5, 1, 10, 0, 0, TimeSpan.Zero);
    private static readonly RegisterMedia Register = new("acme", "f_1", "alice", "c-1", "a.png", "image/png", 10, new string('b', 64), 2, 3);

    private static MediaState Uploaded()
    {
        var (e, _) = MediaDecider.Decide(MediaState.Empty, Register, Now);
        return MediaState.Empty.Apply(e!);
    }

    [Fact]
    public void Registering_records_the_file_and_again_with_the_same_bytes_answers_the_same()
    {
        var (e, reply) = MediaDecider.Decide(MediaState.Empty, Register, Now);
        var uploaded = Assert.IsType<MediaUploaded>(e);
        Assert.Equal(uploaded.File, reply);
        Assert.Equal("image", uploaded.File.Kind);
        Assert.Equal(MediaFile.Ready, uploaded.File.State);
        var s = MediaState.Empty.Apply(uploaded);
        var (again, same) = MediaDecider.Decide(s, Register, Now.AddMinutes(1));
        Assert.Null(again);
        Assert.Equal(uploaded.File, same);
        var (other, conflict) = MediaDecider.Decide(s, Register with { Sha256 = new string('c', 64) }, Now);
        Assert.Null(other);
        Assert.Equal(ErrorCodes.Conflict, Assert.IsType<Rejection>(conflict).Code);
    }

    [Fact]
    public void A_thumbnail_outcome_is_recorded_once_and_never_for_a_deleted_file()
    {
        var s = Uploaded();
        var thumb = new MediaThumbnail("image/jpeg", 320, 160, 5000);
        var (e, reply) = MediaDecider.Decide(s, new RecordThumbnail("acme", "f_1", thumb, 1000, 500, null, null), Now);
        var processed = Assert.IsType<MediaProcessed>(e);
        Assert.Null(processed.Skipped);
        var file = Assert.IsType<MediaFile>(reply);
        Assert.Equal((thumb, 1000, 500, true), (file.Thumbnail, file.Width, file.Height, file.Processed));
        s = s.Apply(processed);
        Assert.Equal(file, s.File);
        // A second outcome (another node's scan) answers the first and persists nothing.
        var (again, same) = MediaDecider.Decide(s, new RecordThumbnail("acme", "f_1", null, null, null, null, "timeout"), Now);
        Assert.Null(again);
        Assert.Equal(thumb, Assert.IsType<MediaFile>(same).Thumbnail);

        // No thumbnail: why is kept, the dimensions too; the earlier ones stay where the outcome has none.
        var (skip, skipped) = MediaDecider.Decide(Uploaded(), new RecordThumbnail("acme", "f_1", null, 60_000, null, null, "too_many_pixels"), Now);
        Assert.Equal("too_many_pixels", Assert.IsType<MediaProcessed>(skip).Skipped);
        Assert.Equal((null, "too_many_pixels", 60_000, 3), (((MediaFile)skipped).Thumbnail, ((MediaFile)skipped).ThumbnailSkipped,
            ((MediaFile)skipped).Width, ((MediaFile)skipped).Height));

        var (deleted, _) = MediaDecider.Decide(Uploaded(), new DeleteMedia("acme", "f_1", "alice", false), Now);
        var gone = Uploaded().Apply(deleted!);
        var (none, notFound) = MediaDecider.Decide(gone, new RecordThumbnail("acme", "f_1", thumb, 1, 1, null, null), Now);
        Assert.Null(none);
        Assert.Equal(ErrorCodes.NotFound, Assert.IsType<Rejection>(notFound).Code);
    }

    [Fact]
    public void A_zero_byte_file_is_refused()
    {
        var (e, reply) = MediaDecider.Decide(MediaState.Empty, Register with { Size = 0 }, Now);
        Assert.Null(e);
        Assert.Equal(ErrorCodes.ValidationFailed, Assert.IsType<Rejection>(reply).Code);
    }

    [Fact]
    public void The_owner_or_a_moderator_deletes_and_then_the_file_is_not_found()
    {
        var s = Uploaded();
        var (none, forbidden) = MediaDecider.Decide(s, new DeleteMedia("acme", "f_1", "bob", ActorModerates: false), Now);
        Assert.Null(none);
        Assert.Equal(ErrorCodes.Forbidden, Assert.IsType<Rejection>(forbidden).Code);

        var (deleted, _) = MediaDecider.Decide(s, new DeleteMedia("acme", "f_1", "bob", ActorModerates: true), Now);
        s = s.Apply(Assert.IsType<MediaDeleted>(deleted));
        Assert.Equal(MediaFile.Deleted, s.File!.State);
        Assert.Equal("bob", s.File.DeletedBy);
        Assert.Equal(ErrorCodes.NotFound, Assert.IsType<Rejection>(MediaDecider.Decide(s, new GetMedia("acme", "f_1"), Now).Reply).Code);
        Assert.IsType<MediaFile>(MediaDecider.Decide(s, new GetMedia("acme", "f_1", IncludeDeleted: true), Now).Reply);
        Assert.Equal(ErrorCodes.NotFound,
            Assert.IsType<Rejection>(MediaDecider.Decide(s, new DeleteMedia("acme", "f_1", "alice", false), Now).Reply).Code);
        // A deleted id is not registered again.
        Assert.Equal(ErrorCodes.Conflict, Assert.IsType<Rejection>(MediaDecider.Decide(s, Register, Now).Reply).Code);
    }

    [Fact]
    public void Nothing_is_found_before_the_upload()
    {
        Assert.Equal(ErrorCodes.NotFound, Assert.IsType<Rejection>(MediaDecider.Decide(MediaState.Empty, new GetMedia("acme", "f_1"), Now).Reply).Code);
    }
}
