using System.CommandLine;
using Caas.Enrichment.Cli;

namespace Caas.Node;

/// <summary><c>caas train</c> and <c>caas eval</c>: build and measure the enrichers' models (src/Caas.Enrichment).</summary>
public static class EnrichmentCli
{
    public static Command Train()
    {
        var task = new Option<string>("--task") { Description = "intent or sentiment.", Required = true };
        var data = new Option<string>("--data") { Description = "A labelled file: JSONL {text,intent}, CSV text,category or TSV label<TAB>text.", Required = true };
        var output = new Option<string>("--out") { Description = "Where the trained model goes.", Required = true };
        var command = new Command("train", "Train an enricher model from a labelled file.") { task, data, output };
        command.SetAction(parse => EnrichmentCommands.Train(parse.GetValue(task)!, parse.GetValue(data)!, parse.GetValue(output)!, Console.Out));
        return command;
    }

    public static Command Eval()
    {
        var task = new Option<string>("--task") { Description = "intent, sentiment, entities, ocr or asr.", Required = true };
        var data = new Option<string>("--data") { Description = "Labelled data (a file, a folder of images with .txt truth for ocr, a TSV of audio file and transcript for asr).", Required = true };
        var model = new Option<string?>("--model") { Description = "A trained model directory (default: the shipped model)." };
        var command = new Command("eval", "Measure an enricher on labelled data; the last line is machine-readable.") { task, data, model };
        command.SetAction(parse => EnrichmentCommands.Eval(parse.GetValue(task)!, parse.GetValue(data)!, parse.GetValue(model), Console.Out));
        return command;
    }
}
