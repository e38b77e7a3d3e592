using Caas.Enrichment.Context;
using Caas.Enrichment.Evaluation;
using Caas.Enrichment.Intent;
using Xunit;

namespace Caas.Enrichment.Tests;

public class ContextTests
{
    /// <summary>
    /// The key terms and the typical message, which the tracker keeps up as terms are counted, checked after every
    /// message against their definitions worked out from scratch: the topic's messages since its last switch, their
    /// terms counted, sorted by count then ordinally; the first of the last 4 × Window messages most like the topic.
    /// Three conversations of CLINC150 validation texts, with their labels as intents (so topics switch and run long),
    /// and one long topic of numbered messages whose terms keep growing.
    /// </summary>
    [Fact]
    public void Key_terms_and_the_typical_message_match_their_definitions_after_every_message()
    {
        var rows = System.IO.File.ReadLines(TestData.File("intent", "clinc150-val.jsonl"))
            .Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement)
            .Select(e => (Text: e.GetProperty("text").GetString()!, Intent: e.GetProperty("intent").GetString()!))
            .Take(1500)
            .Select((r, i) => (Conversation: "c" + i % 3, r.Text, (string?)r.Intent))
            .Concat(Enumerable.Range(0, 400).Select(i => (Conversation: "long", Text: $"benchmark message {i % 37} of {i}", (string?)"balance")))
            .ToList();
        var options = new ConversationContextOptions();
        var tracker = new ConversationContextTracker(options);
        var topics = new Dictionary<string, List<string>>();
        var switches = 0;
        var longest = 0;
        foreach (var (conversation, text, intent) in rows)
        {
            var result = tracker.Observe(conversation, text, intent);
            if (result.MessagesInTopic == 1) topics[conversation] = [];
            if (result.TopicSwitch) switches++;
            var topic = topics[conversation];
            topic.Add(text);
            Assert.Equal(topic.Count, result.MessagesInTopic);
            longest = Math.Max(longest, topic.Count);

            var terms = new Dictionary<string, int>(StringComparer.Ordinal);
            foreach (var said in topic)
                foreach (var (term, n) in ConversationContextTracker.BagOf(said)) terms[term] = terms.GetValueOrDefault(term) + n;
            var expectedTerms = terms.OrderByDescending(t => t.Value).ThenBy(t => t.Key, StringComparer.Ordinal)
                .Take(options.SummaryTerms).Select(t => t.Key).ToList();
            Assert.Equal(expectedTerms, result.KeyTerms);

            var typical = topic.TakeLast(4 * options.Window)
                .OrderByDescending(said => ConversationContextTracker.Cosine(ConversationContextTracker.BagOf(said), terms))
                .First();
            Assert.EndsWith($"; e.g. \"{(typical.Length > 200 ? typical[..200] : typical)}\"", result.Summary);
        }
        // Not vacuous: topics did switch, and one ran long.
        Assert.True(switches > 50, $"{switches} switches");
        Assert.True(longest >= 400, $"longest topic {longest}");
    }

    [Fact]
    public void A_new_intent_with_new_words_switches_topic_and_the_summary_follows()
    {
        var tracker = new ConversationContextTracker();
        Assert.False(tracker.Observe("c1", "can you book me a flight to boston on friday", "book_flight").TopicSwitch);
        Assert.False(tracker.Observe("c1", "a morning flight to boston if possible", "book_flight").TopicSwitch);
        var switched = tracker.Observe("c1", "what's my checking account balance", "balance");
        Assert.True(switched.TopicSwitch);
        Assert.Equal("balance", switched.TopicIntent);
        Assert.Equal(1, switched.MessagesInTopic);
        Assert.Contains("balance", switched.Summary);
    }

    [Fact]
    public void A_different_intent_that_shares_the_words_stays_on_topic()
    {
        var tracker = new ConversationContextTracker();
        tracker.Observe("c1", "book a flight to boston for friday", "book_flight");
        var result = tracker.Observe("c1", "is the boston flight on friday delayed", "flight_status");
        Assert.False(result.TopicSwitch);
        Assert.Equal(2, result.MessagesInTopic);
        Assert.Contains("flight", result.KeyTerms);
        Assert.Contains("boston", result.KeyTerms);
    }

    [Fact]
    public void Conversations_are_tracked_apart_and_out_of_scope_never_switches()
    {
        var tracker = new ConversationContextTracker();
        tracker.Observe("a", "play some jazz music", "play_music");
        tracker.Observe("b", "what's the weather tomorrow", "weather");
        Assert.False(tracker.Observe("a", "what is the meaning of life", IntentModel.OutOfScope).TopicSwitch);
        Assert.Equal("play_music", tracker.Observe("a", "louder please", null).TopicIntent);
        Assert.Equal("weather", tracker.Observe("b", "and on sunday?", "weather").TopicIntent);
    }

    [Fact]
    public void Old_conversations_are_forgotten_beyond_the_limit()
    {
        var tracker = new ConversationContextTracker(new ConversationContextOptions { MaxConversations = 10 });
        for (var i = 0; i < 50; i++) tracker.Observe($"c{i}", "hello there friend", "greeting");
        var again = tracker.Observe("c0", "transfer money to my savings", "transfer");
        Assert.False(again.TopicSwitch, "a forgotten conversation starts afresh");
        Assert.Equal(1, again.MessagesInTopic);
    }

    /// <summary>
    /// Conversations stitched from CLINC150 validation messages: four messages of one intent, then another. With the
    /// labelled intents, switches are found; with one intent in ten replaced by a wrong one (as a classifier would),
    /// the word-similarity guard keeps false switches down.
    /// </summary>
    [Fact]
    public void Topic_switches_are_found_in_stitched_clinc150_conversations()
    {
        var byIntent = LabelledTextFile.Read(TestData.File("intent", "clinc150-val.jsonl"))
            .Where(e => e.Label != IntentModel.OutOfScope)
            .GroupBy(e => e.Label)
            .ToDictionary(g => g.Key, g => g.Select(e => e.Text).ToList());
        var intents = byIntent.Keys.Order(StringComparer.Ordinal).ToList();
        var random = new Random(11);
        int truePositives = 0, falsePositives = 0, falseNegatives = 0, noisyFalsePositives = 0, stayed = 0;
        var clean = new ConversationContextTracker();
        var noisy = new ConversationContextTracker();
        for (var c = 0; c < 200; c++)
        {
            var topics = Enumerable.Range(0, 3).Select(_ => intents[random.Next(intents.Count)]).ToList();
            for (var t = 0; t < topics.Count; t++)
            {
                for (var m = 0; m < 4; m++)
                {
                    var text = byIntent[topics[t]][random.Next(byIntent[topics[t]].Count)];
                    var expectedSwitch = t > 0 && m == 0 && topics[t] != topics[t - 1];
                    var found = clean.Observe($"c{c}", text, topics[t]).TopicSwitch;
                    if (found && expectedSwitch) truePositives++;
                    else if (found) falsePositives++;
                    else if (expectedSwitch) falseNegatives++;

                    var wrongIntent = random.NextDouble() < 0.1 ? intents[random.Next(intents.Count)] : topics[t];
                    var noisyFound = noisy.Observe($"c{c}", text, wrongIntent).TopicSwitch;
                    if (!expectedSwitch && m > 0)
                    {
                        stayed++;
                        if (noisyFound) noisyFalsePositives++;
                    }
                }
            }
        }
        var recall = truePositives / (double)(truePositives + falseNegatives);
        var precision = truePositives / (double)(truePositives + falsePositives);
        Assert.True(recall >= 0.8, $"switch recall {recall:0.000}");
        Assert.True(precision >= 0.95, $"switch precision {precision:0.000}");
        // Without the similarity guard every wrong intent would switch (about 10% of messages).
        Assert.True(noisyFalsePositives / (double)stayed <= 0.08, $"false switches {noisyFalsePositives}/{stayed}");
    }
}
