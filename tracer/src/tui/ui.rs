//! Drawing: a pure function of the `App` into a frame. Every area is derived
//! from the frame's size with saturating arithmetic so that any terminal
//! size, however small, draws (possibly nothing) instead of panicking.

use ratatui::{
    buffer::Buffer,
    layout::{Constraint, Layout, Rect},
    style::{Color, Modifier, Style},
    text::{Line, Span, Text},
    widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table, TableState, Wrap},
    Frame,
};

use super::app::{
    edge_row, finding_row, held_row, App, View, EDGE_HEADER, FINDING_HEADER, HELD_HEADER,
};
use tracer_core::analysis::Severity;

pub const KEYS: &[(&str, &str)] = &[
    ("tab/right, shift-tab/left", "next / previous view"),
    ("1 2 3", "findings, lock graph, held locks"),
    ("up/down, k/j", "move the selection"),
    ("home/g, end/G", "first / last row"),
    ("enter", "open / close the finding's detail"),
    ("pgdn/space, pgup", "scroll the detail"),
    ("/", "filter rows (enter applies, esc clears)"),
    ("esc", "close the detail, else clear the filter"),
    ("p", "pause the view (events are still counted)"),
    ("s", "save the report (text + JSON) in the cwd"),
    ("?", "this help (any key closes it)"),
    ("q, ctrl-c", "quit"),
];

pub fn draw(f: &mut Frame, app: &App) {
    let area = f.area();
    if area.width == 0 || area.height == 0 {
        return;
    }
    let [tabs, main, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(2),
    ])
    .areas(area);
    draw_tabs(f, app, tabs);
    match app.view {
        View::Findings => draw_findings(f, app, main),
        View::Graph => draw_graph(f, app, main),
        View::Held => draw_held(f, app, main),
    }
    draw_status(f, app, status);
    if app.help {
        draw_help(f, area);
    }
}

fn draw_tabs(f: &mut Frame, app: &App, area: Rect) {
    let counts = [
        app.snap.findings.len(),
        app.snap.edges.len(),
        app.snap.held.len(),
    ];
    let mut spans = vec![Span::styled(
        " tracer ",
        Style::default().add_modifier(Modifier::BOLD),
    )];
    for (i, v) in View::ALL.iter().enumerate() {
        let style = if *v == app.view {
            Style::default()
                .fg(Color::Black)
                .bg(Color::Cyan)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::default()
        };
        spans.push(Span::raw(" "));
        spans.push(Span::styled(
            format!(" {} {} ({}) ", i + 1, v.title(), counts[i]),
            style,
        ));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn severity_style(s: Severity) -> Style {
    match s {
        Severity::Error => Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
        Severity::Warning => Style::default().fg(Color::Yellow),
        Severity::Info => Style::default().fg(Color::Blue),
    }
}

fn selected_style() -> Style {
    Style::default().add_modifier(Modifier::REVERSED)
}

fn titled(title: String) -> Block<'static> {
    Block::default().borders(Borders::ALL).title(title)
}

fn filter_note(app: &App) -> String {
    if app.filter.is_empty() {
        String::new()
    } else {
        format!(" [filter: {}]", app.filter)
    }
}

/// A table of string rows, or a line saying why it is empty. (One call per
/// view, each spelling out its columns: a struct would only rename them.)
#[allow(clippy::too_many_arguments)]
fn draw_table(
    f: &mut Frame,
    area: Rect,
    block: Block<'static>,
    header: &[&str],
    rows: Vec<(Vec<String>, Style)>,
    widths: &[Constraint],
    selected: usize,
    empty: &str,
) {
    if rows.is_empty() {
        f.render_widget(
            Paragraph::new(empty.to_string())
                .block(block)
                .wrap(Wrap { trim: true }),
            area,
        );
        return;
    }
    let header = Row::new(header.iter().map(|h| Cell::from(h.to_string())))
        .style(Style::default().add_modifier(Modifier::BOLD | Modifier::UNDERLINED));
    let rows = rows
        .into_iter()
        .map(|(cells, style)| Row::new(cells.into_iter().map(Cell::from)).style(style));
    let table = Table::new(rows, widths.to_vec())
        .header(header)
        .block(block)
        .column_spacing(1)
        .row_highlight_style(selected_style())
        .highlight_symbol("> ");
    let mut st = TableState::default().with_selected(Some(selected));
    f.render_stateful_widget(table, area, &mut st);
}

fn draw_findings(f: &mut Frame, app: &App, area: Rect) {
    let (list, detail) = if app.detail {
        let [a, b] =
            Layout::vertical([Constraint::Percentage(30), Constraint::Percentage(70)]).areas(area);
        (a, Some(b))
    } else {
        (area, None)
    };
    let visible = app.visible_findings();
    let rows = visible
        .iter()
        .map(|fd| (finding_row(fd).to_vec(), severity_style(fd.severity)))
        .collect();
    let empty = if app.snap.findings.is_empty() {
        "no findings yet".to_string()
    } else {
        format!("no finding matches \"{}\" (esc clears)", app.filter)
    };
    draw_table(
        f,
        list,
        titled(format!(
            " Findings {}/{}{} ",
            visible.len(),
            app.snap.findings.len(),
            filter_note(app)
        )),
        &FINDING_HEADER,
        rows,
        &[
            Constraint::Length(8),
            Constraint::Length(22),
            Constraint::Length(20),
            Constraint::Length(6),
            Constraint::Length(11),
            Constraint::Min(10),
        ],
        app.selected(),
        &empty,
    );
    if let Some(area) = detail {
        let text = app.detail_text().unwrap_or_default();
        let title = app
            .selected_finding()
            .map(|fd| format!(" {} ", fd.title))
            .unwrap_or_default();
        f.render_widget(
            Paragraph::new(Text::from(text))
                .block(titled(title))
                .wrap(Wrap { trim: false })
                .scroll((app.detail_scroll, 0)),
            area,
        );
    }
}

fn draw_graph(f: &mut Frame, app: &App, area: Rect) {
    let class_text: Vec<String> = app
        .snap
        .classes
        .iter()
        .map(|c| {
            format!(
                "{}{}  out {} in {}",
                if c.in_cycle { "! " } else { "" },
                c.name,
                c.before,
                c.after
            )
        })
        .collect();
    let class_w = (class_text.iter().map(|l| l.len()).max().unwrap_or(0) as u16 + 2)
        .min(area.width.saturating_mul(2) / 5);
    // Cycle lines wrap in their pane: size the pane for the wrapped lines.
    // (four fifths of the width: words wrap before the edge)
    let cycle_w = (area.width.saturating_sub(class_w).saturating_sub(2) as usize * 4 / 5).max(1);
    let cycle_rows: usize = app
        .snap
        .cycles
        .iter()
        .map(|l| l.len().div_ceil(cycle_w).max(1))
        .sum();
    let bottom_lines = class_text.len().max(cycle_rows).max(1) as u16;
    let bottom_h = bottom_lines.saturating_add(2).min(area.height / 2);
    let [edges, bottom] =
        Layout::vertical([Constraint::Min(0), Constraint::Length(bottom_h)]).areas(area);
    let [classes, cycles] =
        Layout::horizontal([Constraint::Length(class_w), Constraint::Min(0)]).areas(bottom);
    draw_edges(f, app, edges);
    draw_classes_and_cycles(f, app, class_text, classes, cycles);
}

/// The lock-order edges table, cycles in red.
fn draw_edges(f: &mut Frame, app: &App, edges: Rect) {
    let visible = app.visible_edges();
    let rows = visible
        .iter()
        .map(|r| {
            let mut cells = edge_row(r).to_vec();
            if r.in_cycle {
                cells[0] = format!("! {}", cells[0]);
            }
            let style = if r.in_cycle {
                Style::default().fg(Color::Red).add_modifier(Modifier::BOLD)
            } else {
                Style::default()
            };
            (cells, style)
        })
        .collect();
    draw_table(
        f,
        edges,
        titled(format!(
            " Lock order (held, then acquired) {}/{}{} ",
            visible.len(),
            app.snap.edges.len(),
            filter_note(app)
        )),
        &EDGE_HEADER,
        rows,
        &[
            Constraint::Length(32),
            Constraint::Length(32),
            Constraint::Length(20),
            Constraint::Min(10),
        ],
        app.selected(),
        "no lock-order edge matches the filter",
    );
}

/// The classes pane (with edge counts) and the cycles pane under the edges.
fn draw_classes_and_cycles(
    f: &mut Frame,
    app: &App,
    class_text: Vec<String>,
    classes: Rect,
    cycles: Rect,
) {
    let class_lines: Vec<Line> = app
        .snap
        .classes
        .iter()
        .zip(class_text)
        .map(|(c, t)| {
            let style = if c.in_cycle {
                Style::default().fg(Color::Red).add_modifier(Modifier::BOLD)
            } else {
                Style::default()
            };
            Line::styled(t, style)
        })
        .collect();
    f.render_widget(
        Paragraph::new(class_lines)
            .block(titled(format!(" Classes ({}) ", app.snap.classes.len()))),
        classes,
    );
    let lines: Vec<Line> = if app.snap.cycles.is_empty() {
        vec![Line::raw("none")]
    } else {
        app.snap
            .cycles
            .iter()
            .map(|c| Line::styled(c.clone(), Style::default().fg(Color::Red)))
            .collect()
    };
    f.render_widget(
        Paragraph::new(lines)
            .block(titled(" Cycles ".to_string()))
            .wrap(Wrap { trim: false }),
        cycles,
    );
}

fn draw_held(f: &mut Frame, app: &App, area: Rect) {
    let visible = app.visible_held();
    let rows = visible
        .iter()
        .map(|h| (held_row(h).to_vec(), Style::default()))
        .collect();
    let empty = if app.snap.held.is_empty() {
        "no hooked lock is held right now"
    } else {
        "no held lock matches the filter"
    };
    draw_table(
        f,
        area,
        titled(format!(
            " Held locks at {} s {}/{}{} ",
            tracer_core::report::secs(app.snap.now_ns, 3),
            visible.len(),
            app.snap.held.len(),
            filter_note(app)
        )),
        &HELD_HEADER,
        rows,
        &[
            Constraint::Length(16),
            Constraint::Length(18),
            Constraint::Min(20),
            Constraint::Length(18),
            Constraint::Length(13),
            Constraint::Length(9),
        ],
        app.selected(),
        empty,
    );
}

/// The status bar's first line (also used by tests and the shell's title).
pub fn status_line(app: &App) -> String {
    let s = &app.source;
    let mut parts = vec![s.label.clone()];
    if let Some((done, total)) = app.progress {
        let pct = (done * 100).checked_div(total).unwrap_or(100);
        parts[0] = format!("{} {pct}%", s.label);
    }
    parts.push(format!("{} ({})", s.kernel_release, s.era));
    parts.push(format!(
        "{} hooks, {} unavailable",
        s.hooks_attached, s.hooks_failed
    ));
    parts.push(format!("{:.0} ev/s", app.rate));
    parts.push(format!("{} events, {} lost", app.events, app.lost));
    if app.paused {
        parts.push("PAUSED".to_string());
    }
    parts.join(" | ")
}

fn draw_status(f: &mut Frame, app: &App, area: Rect) {
    let [top, bottom] =
        Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(area);
    let style = if app.lost > 0 || app.source.hooks_failed > 0 {
        Style::default().fg(Color::Black).bg(Color::Yellow)
    } else {
        Style::default().fg(Color::Black).bg(Color::Gray)
    };
    f.render_widget(
        Paragraph::new(format!(" {}", status_line(app))).style(style),
        top,
    );
    let line = if let Some(input) = &app.filter_input {
        Line::from(vec![
            Span::styled("/", Style::default().add_modifier(Modifier::BOLD)),
            Span::raw(input.clone()),
            Span::styled("_", Style::default().add_modifier(Modifier::SLOW_BLINK)),
            Span::raw("   (enter applies, esc clears)"),
        ])
    } else if let Some(m) = &app.message {
        Line::raw(format!(" {m}"))
    } else if let (Some(r), true) = (&app.source.failed_reason, app.source.hooks_attached == 0) {
        Line::styled(
            format!(" no hook attached: {r}"),
            Style::default().fg(Color::Yellow),
        )
    } else {
        Line::raw(
            " tab views  up/down move  enter detail  / filter  p pause  s save  ? help  q quit",
        )
    };
    f.render_widget(Paragraph::new(line), bottom);
}

fn draw_help(f: &mut Frame, area: Rect) {
    let kw = KEYS.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let ww = KEYS.iter().map(|(_, w)| w.len()).max().unwrap_or(0);
    let w = area.width.min((kw + ww + 4) as u16);
    let h = area.height.min(KEYS.len() as u16 + 4);
    let r = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    let mut lines: Vec<Line> = KEYS
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(
                    format!("{k:>kw$}  "),
                    Style::default().add_modifier(Modifier::BOLD),
                ),
                Span::raw(*what),
            ])
        })
        .collect();
    lines.push(Line::raw(""));
    f.render_widget(Clear, r);
    f.render_widget(Paragraph::new(lines).block(titled(" Keys ".to_string())), r);
}

/// A buffer as plain text, one line per row, trailing spaces trimmed (for
/// tests and documentation captures).
pub fn buffer_text(buf: &Buffer) -> String {
    let mut out = String::new();
    let a = buf.area;
    for y in a.y..a.y + a.height {
        let line: String = (a.x..a.x + a.width).map(|x| buf[(x, y)].symbol()).collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
