import Foundation

/// Chrome trace-event JSON (`--format perfetto`) that ui.perfetto.dev and chrome://tracing open.
///
/// - `M` metadata: `process_name` / `thread_name` (and sort indexes) for every pid and tid;
/// - `X` complete slices on the thread's track: lock holds ("hold 'A'"), waits ("wait queue.get-wait
///   'tasks'", "(never returned)" when the trace ended first) and 1 µs (or shorter) "op" slices for
///   each put/get/send/recv; slices of one thread always nest — a hold that would overlap another
///   without nesting goes to an async track (`b`/`e`, category "hold-overlapping");
/// - `s`/`f` flow events (same `id`, `bp: "e"`) from each put to the get of the same message;
/// - `i` instant events for findings, on the thread of their last evidence event (global when none).
///
/// Times (`ts`, `dur`) are microseconds since the first event of the trace, with ns precision.
enum PerfettoExporter {
    static func render(result: AnalysisResult, options: ExportOptions) throws -> String {
        let model = TimelineModel(result: result)
        let context = result.context
        let base = model.start
        func ts(_ t: UInt64) -> String { ExportSupport.micros(t &- base) }
        func q(_ s: String) -> String { ExportSupport.jsonString(s) }
        var lines: [String] = []

        // Metadata.
        let pids = Array(Set(model.threads.map(\.key.pid))).sorted()
        for (i, pid) in pids.enumerated() {
            let name = context.processNames[pid] ?? "pid \(pid)"
            lines.append(#"{"ph":"M","name":"process_name","pid":\#(pid),"tid":0,"args":{"name":\#(q("\(name) (\(pid))"))}}"#)
            lines.append(#"{"ph":"M","name":"process_sort_index","pid":\#(pid),"tid":0,"args":{"sort_index":\#(i)}}"#)
        }
        for t in model.threads {
            let name = context.threadNames[t.key.tid] ?? (t.key.tid == t.key.pid ? "main" : "thread")
            lines.append(#"{"ph":"M","name":"thread_name","pid":\#(t.key.pid),"tid":\#(t.key.tid),"args":{"name":\#(q("\(name) (\(t.key.tid))"))}}"#)
            lines.append(#"{"ph":"M","name":"thread_sort_index","pid":\#(t.key.pid),"tid":\#(t.key.tid),"args":{"sort_index":\#(t.key.tid)}}"#)
        }

        if let note = context.eventsNote, let pid = pids.first {
            // What the bounded timeline left out (EvidenceWindows), where a reader of the trace sees it.
            lines.append(#"{"ph":"i","s":"g","cat":"tangle","name":\#(q("tangle: " + note)),"pid":\#(pid),"tid":\#(pid),"ts":0}"#)
        }

        // Slices, in time order (parents before children at equal start).
        let ordered = model.slices.enumerated().sorted { a, b in
            if a.element.start != b.element.start { return a.element.start < b.element.start }
            return a.offset < b.offset
        }.map(\.element)
        var asyncID = 0
        for s in ordered {
            let args = #"{"object":\#(q(ExportSupport.objectLabel(s.object, context))),"unfinished":\#(s.unfinished)}"#
            if s.nested {
                lines.append(#"{"ph":"X","cat":"\#(s.category.rawValue)","name":\#(q(model.name(s))),"pid":\#(s.thread.pid),"tid":\#(s.thread.tid),"ts":\#(ts(s.start)),"dur":\#(ExportSupport.micros(s.end > s.start ? s.end - s.start : 0)),"args":\#(args)}"#)
            } else {
                asyncID += 1
                let name = q("\(model.name(s)) [tid \(s.thread.tid)]")
                lines.append(#"{"ph":"b","cat":"hold-overlapping","name":\#(name),"id":\#(asyncID),"pid":\#(s.thread.pid),"tid":\#(s.thread.tid),"ts":\#(ts(s.start)),"args":\#(args)}"#)
                lines.append(#"{"ph":"e","cat":"hold-overlapping","name":\#(name),"id":\#(asyncID),"pid":\#(s.thread.pid),"tid":\#(s.thread.tid),"ts":\#(ts(s.end))}"#)
            }
        }

        // Message flows.
        for f in model.flows {
            lines.append(#"{"ph":"s","cat":"message","name":\#(q(model.name(f))),"id":\#(f.id),"bp":"e","pid":\#(f.from.pid),"tid":\#(f.from.tid),"ts":\#(ts(f.fromTime))}"#)
            lines.append(#"{"ph":"f","cat":"message","name":\#(q(model.name(f))),"id":\#(f.id),"bp":"e","pid":\#(f.to.pid),"tid":\#(f.to.tid),"ts":\#(ts(f.toTime))}"#)
        }

        // Findings.
        let firstPid = pids.first ?? 0
        for m in model.markers {
            let f = m.finding
            let args = #"{"severity":\#(q(f.severity.rawValue)),"confidence":\#(q(f.confidence.rawValue)),"fingerprint":\#(q(f.fingerprint)),"explanation":\#(q(f.explanation))}"#
            if let k = m.thread {
                lines.append(#"{"ph":"i","s":"t","cat":"finding","name":\#(q(m.name)),"pid":\#(k.pid),"tid":\#(k.tid),"ts":\#(ts(m.time)),"args":\#(args)}"#)
            } else {
                lines.append(#"{"ph":"i","s":"g","cat":"finding","name":\#(q(m.name)),"pid":\#(firstPid),"tid":\#(firstPid),"ts":\#(ts(m.time)),"args":\#(args)}"#)
            }
        }

        let other = #"{"tool":"tangle","version":\#(q(options.toolVersion)),"clock":"CLOCK_MONOTONIC","start_ns":\#(base)}"#
        return "{\"displayTimeUnit\":\"ms\",\"otherData\":\(other),\"traceEvents\":[\n" + lines.joined(separator: ",\n") + "\n]}\n"
    }
}
