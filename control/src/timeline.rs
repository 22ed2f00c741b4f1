//! A call's latency waterfall as a standalone SVG (`GET /v1/observability/sessions/:id/timeline.svg`).
//!
//! Latency numbers alone hide *where* a slow reply spent its time; one picture of every turn
//! on the call's clock shows it at a glance: the caller's and the agent's speech across the
//! whole call, and under them one row per turn with a bar per stage (endpointing, STT, LLM,
//! first sentence, TTS, engine/playout), the voice-to-voice latency, and red barge-in
//! markers.
//!
//! [`render`] is a pure function of a [`Timeline`]: no clock, no I/O, no randomness, so the
//! same input gives the same bytes (cacheable, diffable, testable). The input types mirror
//! the engine's [`TurnTrace`] field by field with a `_ms` suffix, because the control plane
//! stores and serves milliseconds while the engine keeps `Duration`s; the `From` impl is the
//! whole conversion.
//!
//! The SVG keeps a small, stable structure that tests and tools may rely on:
//! - every turn is a `<g class="turn" data-turn="N">` (with `data-v2v-ms` when known);
//! - every stage bar is `<rect class="stage stage-KEY" data-ms="…">` with a `<title>` such as
//!   `LLM first token 300 ms`, where KEY is one of [`Stage::key`];
//! - speech bars are `<rect class="lane-bar lane-caller|lane-agent">`;
//! - barge-in markers are `<g class="barge-in">` with a `<title>`.

use std::fmt::Write as _;
use std::time::Duration;

use parley_engine::trace::TurnTrace;

/// One call, as the waterfall needs it. Times are milliseconds since the call started.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Timeline {
    /// The call's id, shown in the header (escaped; any string is safe).
    pub call_id: String,
    /// The agent's display name, shown in the header when known.
    pub agent_name: Option<String>,
    /// Length of the call. The time axis spans at least this much, and stretches further if
    /// a turn stamp lies beyond it (a trace recorded after the last tick is still drawn).
    pub duration_ms: u64,
    /// The call's turns, in the order they are drawn (normally by turn number).
    pub turns: Vec<TimelineTurn>,
}

/// One turn: the caller's speech and the agent's reply, every stage stamped in ms since the
/// call started. Field names are those of the engine's [`TurnTrace`] plus `_ms`; a `None`
/// means the stage never happened (or was not recorded), and its bar is simply not drawn.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct TimelineTurn {
    /// Turn number; 0 is the agent's greeting when it speaks first.
    pub turn: u32,
    pub speech_start_ms: Option<u64>,
    pub speech_end_ms: Option<u64>,
    pub turn_end_ms: Option<u64>,
    pub stt_final_ms: Option<u64>,
    pub llm_request_ms: Option<u64>,
    pub llm_first_token_ms: Option<u64>,
    pub first_sentence_ms: Option<u64>,
    pub tts_request_ms: Option<u64>,
    pub tts_first_audio_ms: Option<u64>,
    pub first_audio_sent_ms: Option<u64>,
    pub first_playback_ack_ms: Option<u64>,
    pub playback_done_ms: Option<u64>,
    pub interrupted_ms: Option<u64>,
    /// How much of the reply the caller heard (a duration, not a stamp).
    pub played_ms: Option<u32>,
    /// When the caller's interrupting speech began.
    pub barge_in_onset_ms: Option<u64>,
}

impl TimelineTurn {
    /// Caller speech end → first agent audio sent: the response time the caller feels.
    /// Same definition as [`TurnTrace::voice_to_voice`].
    pub fn voice_to_voice_ms(&self) -> Option<u64> {
        Some(
            self.first_audio_sent_ms?
                .saturating_sub(self.speech_end_ms?),
        )
    }

    /// When the agent stopped talking: cut off by a barge-in, else the end of playback.
    fn agent_speech_end_ms(&self) -> Option<u64> {
        self.interrupted_ms.or(self.playback_done_ms)
    }

    fn stamps(&self) -> [Option<u64>; 14] {
        [
            self.speech_start_ms,
            self.speech_end_ms,
            self.turn_end_ms,
            self.stt_final_ms,
            self.llm_request_ms,
            self.llm_first_token_ms,
            self.first_sentence_ms,
            self.tts_request_ms,
            self.tts_first_audio_ms,
            self.first_audio_sent_ms,
            self.first_playback_ack_ms,
            self.playback_done_ms,
            self.interrupted_ms,
            self.barge_in_onset_ms,
        ]
    }
}

fn ms(d: Option<Duration>) -> Option<u64> {
    d.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl From<&TurnTrace> for TimelineTurn {
    fn from(t: &TurnTrace) -> Self {
        Self {
            turn: t.turn,
            speech_start_ms: ms(t.speech_start),
            speech_end_ms: ms(t.speech_end),
            turn_end_ms: ms(t.turn_end),
            stt_final_ms: ms(t.stt_final),
            llm_request_ms: ms(t.llm_request),
            llm_first_token_ms: ms(t.llm_first_token),
            first_sentence_ms: ms(t.first_sentence),
            tts_request_ms: ms(t.tts_request),
            tts_first_audio_ms: ms(t.tts_first_audio),
            first_audio_sent_ms: ms(t.first_audio_sent),
            first_playback_ack_ms: ms(t.first_playback_ack),
            playback_done_ms: ms(t.playback_done),
            interrupted_ms: ms(t.interrupted),
            played_ms: t.played_ms,
            barge_in_onset_ms: ms(t.barge_in_onset),
        }
    }
}

impl Timeline {
    /// Builds a timeline straight from the engine's traces of a call.
    pub fn from_traces(
        call_id: impl Into<String>,
        agent_name: Option<String>,
        duration: Duration,
        traces: &[TurnTrace],
    ) -> Self {
        Self {
            call_id: call_id.into(),
            agent_name,
            duration_ms: ms(Some(duration)).unwrap_or(0),
            turns: traces.iter().map(TimelineTurn::from).collect(),
        }
    }

    /// The end of the time axis: the call's length or its latest stamp, whichever is later,
    /// and at least one second, so the scale is defined and an empty call still gets a
    /// readable axis.
    fn axis_end_ms(&self) -> u64 {
        self.turns
            .iter()
            .flat_map(|t| t.stamps())
            .flatten()
            .fold(self.duration_ms, u64::max)
            .max(1000)
    }
}

/// A stage of a turn's waterfall: one colored bar from one stamp to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Caller speech end → turn-end decision (the silence threshold).
    Endpointing,
    /// Turn end → final transcript.
    Stt,
    /// LLM request → first token.
    Llm,
    /// First token → first complete sentence (what TTS can start on).
    FirstSentence,
    /// TTS request → first synthesized audio.
    Tts,
    /// First synthesized audio → first frame sent to the caller (engine and pacing).
    Playout,
}

impl Stage {
    /// Every stage, in the order of a turn (and of the legend).
    pub const ALL: [Stage; 6] = [
        Stage::Endpointing,
        Stage::Stt,
        Stage::Llm,
        Stage::FirstSentence,
        Stage::Tts,
        Stage::Playout,
    ];

    /// The CSS class suffix: the bar is `class="stage stage-KEY"`.
    pub fn key(self) -> &'static str {
        match self {
            Stage::Endpointing => "endpointing",
            Stage::Stt => "stt",
            Stage::Llm => "llm",
            Stage::FirstSentence => "first-sentence",
            Stage::Tts => "tts",
            Stage::Playout => "playout",
        }
    }

    /// The human label used in tooltips and the legend.
    pub fn label(self) -> &'static str {
        match self {
            Stage::Endpointing => "endpointing",
            Stage::Stt => "STT final",
            Stage::Llm => "LLM first token",
            Stage::FirstSentence => "first sentence",
            Stage::Tts => "TTS first audio",
            Stage::Playout => "engine/playout",
        }
    }

    /// The bar's fill, `#rrggbb`. Mostly the Okabe–Ito palette, which stays distinguishable
    /// for color-blind readers; red is kept for barge-in only.
    pub fn color(self) -> &'static str {
        match self {
            Stage::Endpointing => "#E69F00",
            Stage::Stt => "#56B4E9",
            Stage::Llm => "#009E73",
            Stage::FirstSentence => "#CC79A7",
            Stage::Tts => "#0072B2",
            Stage::Playout => "#6A3D9A",
        }
    }

    /// The stamps the stage runs between, when both were recorded.
    fn span(self, t: &TimelineTurn) -> Option<(u64, u64)> {
        let (a, b) = match self {
            Stage::Endpointing => (t.speech_end_ms, t.turn_end_ms),
            Stage::Stt => (t.turn_end_ms, t.stt_final_ms),
            Stage::Llm => (t.llm_request_ms, t.llm_first_token_ms),
            Stage::FirstSentence => (t.llm_first_token_ms, t.first_sentence_ms),
            Stage::Tts => (t.tts_request_ms, t.tts_first_audio_ms),
            Stage::Playout => (t.tts_first_audio_ms, t.first_audio_sent_ms),
        };
        Some((a?, b?))
    }
}

/// Fill of the caller's speech bars.
pub const CALLER_COLOR: &str = "#8D6E63";
/// Fill of the agent's speech bars.
pub const AGENT_COLOR: &str = "#455A64";
/// Stroke of barge-in markers.
pub const BARGE_IN_COLOR: &str = "#D62728";

// Layout, in px. Fixed numbers rather than measured text: the output must not depend on
// the fonts of whoever renders it, and a fixed label column keeps every row aligned.
/// Width of the whole picture.
pub const WIDTH: u32 = 1100;
const LEFT: f64 = 150.0; // label column
const RIGHT: f64 = 24.0;
const PLOT_W: f64 = WIDTH as f64 - LEFT - RIGHT;
const AXIS_Y: f64 = 58.0;
const LANE_TOP: f64 = 68.0;
const LANE_H: f64 = 24.0;
const TURNS_TOP: f64 = LANE_TOP + 2.0 * LANE_H + 12.0;
const ROW_H: f64 = 26.0;
const BAR_H: f64 = 14.0;
/// Bars shorter than this are widened so a 0–5 ms stage in a long call stays visible.
const MIN_BAR_W: f64 = 2.0;
const FONT: &str = "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\"";

/// Renders the call's latency waterfall as a standalone SVG document (UTF-8).
///
/// Deterministic: the same `call` always gives the same bytes. Stamps that are missing, or
/// that run backwards (end before start), skip their bar rather than draw a wrong one. A call
/// without turns still renders, saying "no turns recorded".
pub fn render(call: &Timeline) -> String {
    let end = call.axis_end_ms();
    let x = |t: u64| LEFT + (t.min(end) as f64) * PLOT_W / end as f64;
    let rows = call.turns.len().max(1);
    let rows_bottom = TURNS_TOP + rows as f64 * ROW_H;
    let legend = legend_items();
    let legend_top = rows_bottom + 18.0;
    let legend_rows = legend_layout(&legend).last().map_or(1, |p| p.2 + 1);
    let height = (legend_top + legend_rows as f64 * 20.0 + 8.0).ceil() as u32;

    let mut s = String::with_capacity(4096 + call.turns.len() * 2048);
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" {FONT} font-size=\"12\">"
    );
    let _ = writeln!(
        s,
        "<rect class=\"background\" x=\"0\" y=\"0\" width=\"{WIDTH}\" height=\"{height}\" fill=\"#FFFFFF\"/>"
    );

    // Header: who and how long.
    let mut title = format!("call {}", clip(&call.call_id, 60));
    if let Some(agent) = &call.agent_name {
        let _ = write!(title, " \u{b7} agent {}", clip(agent, 40));
    }
    let _ = write!(
        title,
        " \u{b7} {} \u{b7} {} turn{}",
        secs(call.duration_ms, 1),
        call.turns.len(),
        if call.turns.len() == 1 { "" } else { "s" }
    );
    let _ = writeln!(
        s,
        "<text class=\"title\" x=\"16\" y=\"24\" font-size=\"15\" font-weight=\"bold\" fill=\"#222222\">{}</text>",
        esc(&title)
    );

    // Time axis along the top, with light grid lines down through every row.
    let step = tick_step(end);
    let decimals = if step % 1000 == 0 { 0 } else { 1 };
    let _ = writeln!(s, "<g class=\"axis\">");
    let _ = writeln!(
        s,
        "<line x1=\"{:.1}\" y1=\"{AXIS_Y:.1}\" x2=\"{:.1}\" y2=\"{AXIS_Y:.1}\" stroke=\"#888888\"/>",
        LEFT,
        LEFT + PLOT_W
    );
    let mut t = 0;
    while t <= end {
        let tx = x(t);
        let _ = writeln!(
            s,
            "<line class=\"grid\" x1=\"{tx:.1}\" y1=\"{:.1}\" x2=\"{tx:.1}\" y2=\"{rows_bottom:.1}\" stroke=\"#E6E6E6\"/>",
            AXIS_Y
        );
        let _ = writeln!(
            s,
            "<line x1=\"{tx:.1}\" y1=\"{:.1}\" x2=\"{tx:.1}\" y2=\"{AXIS_Y:.1}\" stroke=\"#888888\"/>",
            AXIS_Y - 4.0
        );
        let _ = writeln!(
            s,
            "<text class=\"tick\" x=\"{tx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555555\">{}</text>",
            AXIS_Y - 8.0,
            secs(t, decimals)
        );
        t += step;
    }
    let _ = writeln!(s, "</g>");

    // The two speech lanes across the whole call.
    lane(&mut s, "caller", "caller speech", 0, CALLER_COLOR);
    lane(&mut s, "agent", "agent speech", 1, AGENT_COLOR);
    for t in &call.turns {
        if let Some((a, b)) = ordered(t.speech_start_ms, t.speech_end_ms) {
            let title = format!("turn {} caller speech {}", t.turn, span_secs(a, b));
            lane_bar(&mut s, "caller", 0, x(a), x(b), CALLER_COLOR, &title);
        }
        if let Some((a, b)) = ordered(t.first_audio_sent_ms, t.agent_speech_end_ms()) {
            let how = if t.interrupted_ms.is_some() {
                " (interrupted)"
            } else {
                ""
            };
            let title = format!("turn {} agent speech {}{how}", t.turn, span_secs(a, b));
            lane_bar(&mut s, "agent", 1, x(a), x(b), AGENT_COLOR, &title);
        }
    }

    // One row per turn.
    if call.turns.is_empty() {
        let _ = writeln!(
            s,
            "<text class=\"empty\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#777777\" font-style=\"italic\">no turns recorded</text>",
            LEFT + PLOT_W / 2.0,
            TURNS_TOP + ROW_H / 2.0 + 4.0
        );
    }
    for (i, t) in call.turns.iter().enumerate() {
        let top = TURNS_TOP + i as f64 * ROW_H;
        let v2v = t.voice_to_voice_ms();
        let _ = write!(s, "<g class=\"turn\" data-turn=\"{}\"", t.turn);
        if let Some(v) = v2v {
            let _ = write!(s, " data-v2v-ms=\"{v}\"");
        }
        s.push_str(">\n");
        if i % 2 == 0 {
            let _ = writeln!(
                s,
                "<rect class=\"row\" x=\"0\" y=\"{top:.1}\" width=\"{WIDTH}\" height=\"{ROW_H:.1}\" fill=\"#F5F7FA\"/>"
            );
        }
        let label = match v2v {
            Some(v) => format!("turn {} \u{b7} {v} ms", t.turn),
            None => format!("turn {}", t.turn),
        };
        let _ = writeln!(
            s,
            "<text class=\"label\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#222222\">{}</text>",
            LEFT - 10.0,
            top + ROW_H / 2.0 + 4.0,
            esc(&label)
        );
        for stage in Stage::ALL {
            let Some((a, b)) = stage.span(t).and_then(|(a, b)| ordered(Some(a), Some(b))) else {
                continue;
            };
            let (x0, w) = bar(x(a), x(b));
            let _ = writeln!(
                s,
                "<rect class=\"stage stage-{}\" data-ms=\"{}\" x=\"{x0:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{BAR_H:.1}\" fill=\"{}\"><title>{} {} ms</title></rect>",
                stage.key(),
                b - a,
                top + (ROW_H - BAR_H) / 2.0,
                stage.color(),
                stage.label(),
                b - a
            );
        }
        // The voice-to-voice span as a thin bracket under the bars.
        if let (Some(v), Some(a)) = (v2v, t.speech_end_ms) {
            let y = top + ROW_H - 3.0;
            let _ = writeln!(
                s,
                "<line class=\"v2v\" x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#333333\" stroke-width=\"1.5\"><title>voice-to-voice {v} ms</title></line>",
                x(a),
                x(a + v)
            );
        }
        // Barge-in: where the caller began talking over the agent, and where it stopped.
        // Drawn from the lanes down to this row, so the cut lines up with the agent's bar.
        if let Some(on) = t.barge_in_onset_ms {
            let title = format!("turn {} barge-in onset at {}", t.turn, secs(on, 2));
            marker(&mut s, x(on), top + ROW_H, true, &title);
        }
        if let Some(cut) = t.interrupted_ms {
            let mut title = format!("turn {} interrupted at {}", t.turn, secs(cut, 2));
            if let Some(heard) = t.played_ms {
                let _ = write!(title, ", caller heard {heard} ms");
            }
            if let (Some(on), Some(cut)) = (t.barge_in_onset_ms, t.interrupted_ms) {
                let _ = write!(title, ", reaction {} ms", cut.saturating_sub(on));
            }
            marker(&mut s, x(cut), top + ROW_H, false, &title);
        }
        s.push_str("</g>\n");
    }

    // Legend.
    let _ = writeln!(s, "<g class=\"legend\">");
    for ((label, kind, color), (lx, _, row)) in legend.iter().zip(legend_layout(&legend)) {
        let y = legend_top + row as f64 * 20.0;
        match kind {
            Swatch::Bar => {
                let _ = writeln!(
                    s,
                    "<rect class=\"swatch\" x=\"{lx:.1}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{color}\"/>",
                    y - 10.0
                );
            }
            Swatch::HLine => {
                let _ = writeln!(
                    s,
                    "<line class=\"swatch\" x1=\"{lx:.1}\" y1=\"{0:.1}\" x2=\"{1:.1}\" y2=\"{0:.1}\" stroke=\"{color}\" stroke-width=\"1.5\"/>",
                    y - 4.0,
                    lx + 12.0
                );
            }
            Swatch::VLine => {
                let _ = writeln!(
                    s,
                    "<line class=\"swatch\" x1=\"{0:.1}\" y1=\"{1:.1}\" x2=\"{0:.1}\" y2=\"{2:.1}\" stroke=\"{color}\" stroke-width=\"2\"/>",
                    lx + 6.0,
                    y - 11.0,
                    y + 3.0
                );
            }
        }
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{y:.1}\" fill=\"#333333\">{}</text>",
            lx + 17.0,
            esc(label)
        );
    }
    s.push_str("</g>\n</svg>\n");
    s
}

#[derive(Clone, Copy)]
enum Swatch {
    Bar,
    /// A horizontal rule, like the voice-to-voice bracket.
    HLine,
    /// A vertical rule, like a barge-in marker.
    VLine,
}

fn legend_items() -> Vec<(&'static str, Swatch, &'static str)> {
    let mut items = vec![
        ("caller speech", Swatch::Bar, CALLER_COLOR),
        ("agent speech", Swatch::Bar, AGENT_COLOR),
    ];
    items.extend(
        Stage::ALL
            .iter()
            .map(|st| (st.label(), Swatch::Bar, st.color())),
    );
    items.push(("voice-to-voice", Swatch::HLine, "#333333"));
    items.push(("barge-in", Swatch::VLine, BARGE_IN_COLOR));
    items
}

/// Positions legend items left to right, wrapping at the picture's width: `(x, width, row)`.
/// Widths come from character counts (7 px a character at 12 px) so layout never depends
/// on fonts.
fn legend_layout(items: &[(&str, Swatch, &str)]) -> Vec<(f64, f64, usize)> {
    let mut out = Vec::with_capacity(items.len());
    let (mut lx, mut row) = (16.0, 0);
    for (label, _, _) in items {
        let w = 17.0 + 7.0 * label.chars().count() as f64 + 18.0;
        if lx + w > WIDTH as f64 - RIGHT && lx > 16.0 {
            lx = 16.0;
            row += 1;
        }
        out.push((lx, w, row));
        lx += w;
    }
    out
}

fn lane(s: &mut String, key: &str, label: &str, index: usize, color: &str) {
    let top = LANE_TOP + index as f64 * LANE_H;
    let _ = writeln!(
        s,
        "<g class=\"lane lane-{key}\"><rect x=\"{LEFT:.1}\" y=\"{:.1}\" width=\"{PLOT_W:.1}\" height=\"{:.1}\" fill=\"none\" stroke=\"#DDDDDD\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"{color}\" font-weight=\"bold\">{}</text></g>",
        top + 2.0,
        LANE_H - 4.0,
        LEFT - 10.0,
        top + LANE_H / 2.0 + 4.0,
        esc(label)
    );
}

fn lane_bar(s: &mut String, key: &str, index: usize, x0: f64, x1: f64, color: &str, title: &str) {
    let top = LANE_TOP + index as f64 * LANE_H;
    let (x0, w) = bar(x0, x1);
    let _ = writeln!(
        s,
        "<rect class=\"lane-bar lane-{key}\" x=\"{x0:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\" rx=\"2\" fill=\"{color}\"><title>{}</title></rect>",
        top + 5.0,
        LANE_H - 10.0,
        esc(title)
    );
}

/// A red vertical marker from the top of the lanes to `bottom`, with a tooltip. The
/// onset is dashed (the caller started), the interruption solid with a flag on top (the
/// agent stopped).
fn marker(s: &mut String, mx: f64, bottom: f64, dashed: bool, title: &str) {
    let (class, dash) = if dashed {
        ("barge-in barge-in-onset", " stroke-dasharray=\"3 2\"")
    } else {
        ("barge-in barge-in-cut", "")
    };
    let _ = write!(
        s,
        "<g class=\"{class}\"><title>{}</title><line x1=\"{mx:.1}\" y1=\"{:.1}\" x2=\"{mx:.1}\" y2=\"{bottom:.1}\" stroke=\"{BARGE_IN_COLOR}\" stroke-width=\"{}\"{dash}/>",
        esc(title),
        LANE_TOP,
        if dashed { 1.5 } else { 2.0 }
    );
    if !dashed {
        let _ = write!(
            s,
            "<path d=\"M{:.1} {:.1} L{:.1} {:.1} L{mx:.1} {:.1} Z\" fill=\"{BARGE_IN_COLOR}\"/>",
            mx - 5.0,
            LANE_TOP - 8.0,
            mx + 5.0,
            LANE_TOP - 8.0,
            LANE_TOP
        );
    }
    s.push_str("</g>\n");
}

/// Start and width of a bar from `x0` to `x1`, at least [`MIN_BAR_W`] wide.
fn bar(x0: f64, x1: f64) -> (f64, f64) {
    (x0, (x1 - x0).max(MIN_BAR_W))
}

/// Both stamps, when both exist and do not run backwards.
fn ordered(a: Option<u64>, b: Option<u64>) -> Option<(u64, u64)> {
    let (a, b) = (a?, b?);
    (b >= a).then_some((a, b))
}

/// A "nice" tick spacing giving at most 12 intervals (13 ticks) over `end` ms.
fn tick_step(end: u64) -> u64 {
    const STEPS: [u64; 13] = [
        100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000,
        600_000,
    ];
    STEPS
        .iter()
        .copied()
        .find(|s| end / s <= 12)
        .unwrap_or_else(|| end.div_ceil(12).div_ceil(600_000) * 600_000)
}

/// `a`–`b` as seconds, e.g. `8.89–10.15 s`.
fn span_secs(a: u64, b: u64) -> String {
    let a = secs(a, 2);
    format!("{}\u{2013}{}", a.trim_end_matches(" s"), secs(b, 2))
}

/// `ms` as seconds with `decimals` (0–3) places, by integer arithmetic so the text never
/// depends on float formatting.
fn secs(ms: u64, decimals: u32) -> String {
    let decimals = decimals.min(3);
    let whole = ms / 1000;
    if decimals == 0 {
        return format!("{whole} s");
    }
    let frac = (ms % 1000) / 10u64.pow(3 - decimals);
    format!("{whole}.{frac:0width$} s", width = decimals as usize)
}

/// Shortens `text` to `max` characters, marking the cut with an ellipsis, so a huge id or
/// name cannot push the header off the picture.
fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('\u{2026}');
    out
}

/// Escapes text for XML content and attribute values. Characters XML 1.0 forbids outright
/// (most C0 controls) become U+FFFD: escaping cannot make them legal, and one stray byte in
/// a call id must not make the whole document unparseable.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(n: u32, base: u64) -> TimelineTurn {
        TimelineTurn {
            turn: n,
            speech_start_ms: Some(base),
            speech_end_ms: Some(base + 1500),
            turn_end_ms: Some(base + 2200),
            stt_final_ms: Some(base + 2250),
            llm_request_ms: Some(base + 2260),
            llm_first_token_ms: Some(base + 2560),
            first_sentence_ms: Some(base + 2680),
            tts_request_ms: Some(base + 2690),
            tts_first_audio_ms: Some(base + 2870),
            first_audio_sent_ms: Some(base + 2890),
            first_playback_ack_ms: Some(base + 3000),
            playback_done_ms: Some(base + 5000),
            ..Default::default()
        }
    }

    fn call() -> Timeline {
        let mut cut = turn(2, 6000);
        cut.playback_done_ms = None;
        cut.barge_in_onset_ms = Some(10_000);
        cut.interrupted_ms = Some(10_150);
        cut.played_ms = Some(1200);
        Timeline {
            call_id: "call_123".into(),
            agent_name: Some("Support".into()),
            duration_ms: 14_000,
            turns: vec![turn(1, 500), cut],
        }
    }

    fn parse(svg: &str) -> roxmltree::Document<'_> {
        roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("not well-formed: {e}\n{svg}"))
    }

    fn with_class<'a>(
        doc: &'a roxmltree::Document<'a>,
        class: &'a str,
    ) -> impl Iterator<Item = roxmltree::Node<'a, 'a>> + 'a {
        doc.descendants().filter(move |n| {
            n.attribute("class")
                .is_some_and(|c| c.split(' ').any(|c| c == class))
        })
    }

    fn title_of(n: roxmltree::Node<'_, '_>) -> String {
        n.children()
            .find(|c| c.has_tag_name("title"))
            .and_then(|t| t.text())
            .unwrap_or_default()
            .to_string()
    }

    #[test]
    fn one_group_per_turn_with_every_stage_bar() {
        let svg = render(&call());
        let doc = parse(&svg);
        let root = doc.root_element();
        assert!(root.has_tag_name(("http://www.w3.org/2000/svg", "svg")));
        let turns: Vec<_> = with_class(&doc, "turn").collect();
        assert_eq!(turns.len(), 2);
        assert_eq!(turns[0].attribute("data-turn"), Some("1"));
        assert_eq!(turns[1].attribute("data-turn"), Some("2"));
        assert_eq!(turns[0].attribute("data-v2v-ms"), Some("1390"));
        for g in &turns {
            let stages: Vec<_> = g
                .descendants()
                .filter(|n| {
                    n.attribute("class")
                        .is_some_and(|c| c.starts_with("stage "))
                })
                .collect();
            assert_eq!(stages.len(), Stage::ALL.len());
            for (bar, stage) in stages.iter().zip(Stage::ALL) {
                let class = format!("stage stage-{}", stage.key());
                assert_eq!(bar.attribute("class"), Some(class.as_str()));
                assert_eq!(bar.attribute("fill"), Some(stage.color()));
            }
        }
        let llm = with_class(&doc, "stage-llm").next().unwrap();
        assert_eq!(title_of(llm), "LLM first token 300 ms");
        assert_eq!(llm.attribute("data-ms"), Some("300"));
        let endpointing = with_class(&doc, "stage-endpointing").next().unwrap();
        assert_eq!(title_of(endpointing), "endpointing 700 ms");
        assert!(svg.contains(">turn 1 \u{b7} 1390 ms</text>"));
        // A white background first, so screenshots are not transparent.
        let bg = root.first_element_child().unwrap();
        assert_eq!(bg.attribute("class"), Some("background"));
        assert_eq!(bg.attribute("fill"), Some("#FFFFFF"));
    }

    #[test]
    fn lanes_and_barge_in_markers() {
        let svg = render(&call());
        let doc = parse(&svg);
        assert_eq!(with_class(&doc, "lane-bar").count(), 4);
        let agent: Vec<_> = with_class(&doc, "lane-bar")
            .filter(|n| n.attribute("class") == Some("lane-bar lane-agent"))
            .collect();
        assert_eq!(agent.len(), 2);
        assert_eq!(
            title_of(agent[1]),
            "turn 2 agent speech 8.89\u{2013}10.15 s (interrupted)"
        );
        let markers: Vec<_> = with_class(&doc, "barge-in").collect();
        assert_eq!(markers.len(), 2, "onset and cut, both in turn 2 only");
        for m in &markers {
            assert_eq!(m.parent().unwrap().attribute("data-turn"), Some("2"));
            assert!(m
                .descendants()
                .any(|n| n.attribute("stroke") == Some(BARGE_IN_COLOR)));
        }
        assert_eq!(title_of(markers[0]), "turn 2 barge-in onset at 10.00 s");
        assert_eq!(
            title_of(markers[1]),
            "turn 2 interrupted at 10.15 s, caller heard 1200 ms, reaction 150 ms"
        );
    }

    #[test]
    fn missing_or_backwards_stamps_skip_their_bars() {
        let mut t = TimelineTurn {
            turn: 3,
            speech_start_ms: Some(100),
            speech_end_ms: Some(900),
            turn_end_ms: Some(1600),
            llm_request_ms: Some(1700),
            llm_first_token_ms: Some(1650), // clock went backwards: no bar
            tts_request_ms: Some(1800),
            tts_first_audio_ms: Some(2000),
            ..Default::default()
        };
        let svg = render(&Timeline {
            call_id: "c".into(),
            duration_ms: 3000,
            turns: vec![t.clone()],
            ..Default::default()
        });
        let doc = parse(&svg);
        let keys: Vec<_> = doc
            .descendants()
            .filter_map(|n| n.attribute("class"))
            .filter_map(|c| c.strip_prefix("stage stage-"))
            .collect();
        assert_eq!(keys, ["endpointing", "tts"]);
        let g = with_class(&doc, "turn").next().unwrap();
        assert_eq!(g.attribute("data-v2v-ms"), None);
        assert_eq!(
            with_class(&doc, "lane-agent").count(),
            1,
            "lane only, no bar"
        );
        assert_eq!(with_class(&doc, "barge-in").count(), 0);
        assert_eq!(with_class(&doc, "v2v").count(), 0);

        // A turn with nothing at all still gets its (empty) row.
        t = TimelineTurn {
            turn: 0,
            ..Default::default()
        };
        let svg = render(&Timeline {
            turns: vec![t],
            ..Default::default()
        });
        let doc = parse(&svg);
        assert_eq!(with_class(&doc, "turn").count(), 1);
        assert_eq!(with_class(&doc, "stage").count(), 0);
    }

    #[test]
    fn text_is_escaped() {
        let nasty = Timeline {
            call_id: "a<b>&\"c'\u{1}</svg>".into(),
            agent_name: Some("<script>alert(1)</script> & co".into()),
            duration_ms: 1000,
            turns: vec![],
        };
        let svg = render(&nasty);
        let doc = parse(&svg);
        assert!(!svg.contains("<script>"));
        assert!(!svg.contains("<b>"));
        assert!(svg.contains("a&lt;b&gt;&amp;&quot;c&apos;\u{FFFD}&lt;/svg&gt;"));
        let title = with_class(&doc, "title").next().unwrap().text().unwrap();
        assert!(title.contains("a<b>&\"c'\u{FFFD}</svg>"), "{title}");
        assert!(
            title.contains("agent <script>alert(1)</script> & co"),
            "{title}"
        );
        assert_eq!(esc("x\ty"), "x\ty");
    }

    #[test]
    fn empty_call_says_so() {
        let svg = render(&Timeline {
            call_id: "empty".into(),
            ..Default::default()
        });
        let doc = parse(&svg);
        assert_eq!(with_class(&doc, "turn").count(), 0);
        let empty = with_class(&doc, "empty").next().unwrap();
        assert_eq!(empty.text(), Some("no turns recorded"));
        assert!(with_class(&doc, "tick").count() >= 2);
    }

    #[test]
    fn deterministic_and_sized() {
        let c = call();
        let a = render(&c);
        assert_eq!(a, render(&c.clone()));
        let doc = parse(&a);
        let root = doc.root_element();
        assert_eq!(root.attribute("width"), Some("1100"));
        let h = |svg: &str| -> u32 {
            parse(svg)
                .root_element()
                .attribute("height")
                .unwrap()
                .parse()
                .unwrap()
        };
        let mut more = c.clone();
        more.turns.push(turn(3, 11_000));
        assert_eq!(h(&render(&more)), h(&a) + ROW_H as u32);
        assert!(h(&a) < 600, "3 turns fit a 1200×600 screenshot");
    }

    #[test]
    fn axis_ticks_are_whole_seconds_and_cover_late_stamps() {
        let mut c = call();
        c.duration_ms = 5000; // shorter than the stamps: the axis stretches to 11.3 s
        let svg = render(&c);
        let doc = parse(&svg);
        let ticks: Vec<_> = with_class(&doc, "tick").filter_map(|n| n.text()).collect();
        assert_eq!(ticks.first(), Some(&"0 s"));
        assert_eq!(ticks.last(), Some(&"10 s"));
        assert_eq!(tick_step(800), 100);
        assert_eq!(tick_step(14_000), 2_000);
        assert_eq!(tick_step(3_600_000), 300_000);
        assert_eq!(tick_step(100_000_000), 8_400_000);
        assert_eq!(secs(1234, 1), "1.2 s");
        assert_eq!(secs(1234, 2), "1.23 s");
        assert_eq!(secs(500, 1), "0.5 s");
    }

    #[test]
    fn converts_from_engine_trace() {
        let d = Duration::from_millis;
        let mut tr = TurnTrace::new(4);
        tr.speech_end = Some(d(1000));
        tr.first_audio_sent = Some(d(1710));
        tr.interrupted = Some(d(2500));
        tr.barge_in_onset = Some(d(2400));
        tr.played_ms = Some(790);
        let t = TimelineTurn::from(&tr);
        assert_eq!(t.turn, 4);
        assert_eq!(t.speech_end_ms, Some(1000));
        assert_eq!(t.interrupted_ms, Some(2500));
        assert_eq!(t.barge_in_onset_ms, Some(2400));
        assert_eq!(t.played_ms, Some(790));
        assert_eq!(t.llm_request_ms, None);
        assert_eq!(
            t.voice_to_voice_ms(),
            tr.voice_to_voice().map(|v| v.as_millis() as u64)
        );
        let tl = Timeline::from_traces("c", None, d(3000), &[tr]);
        assert_eq!(tl.duration_ms, 3000);
        assert_eq!(tl.turns, vec![t]);
    }
}
