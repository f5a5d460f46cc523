//! Results: a table per scenario for people (stdout), and the same as JSON.

use serde_json::{Map, Value, json};

use crate::{cost::Cost, cpu::Usage, machine::Machine, stats::Integrity};

#[derive(Clone, Debug)]
pub enum Cell {
    Int(u64),
    /// A number printed with this many decimals.
    Num(f64, usize),
    Text(String),
}

impl Cell {
    fn show(&self) -> String {
        match self {
            Self::Int(n) => n.to_string(),
            Self::Num(x, decimals) => format!("{x:.decimals$}"),
            Self::Text(text) => text.clone(),
        }
    }

    fn json(&self) -> Value {
        match self {
            Self::Int(n) => json!(n),
            Self::Num(x, _) if x.is_finite() => json!(x),
            Self::Num(..) => Value::Null,
            Self::Text(text) => json!(text),
        }
    }
}

pub struct Table {
    pub title: String,
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    pub fn new(title: impl Into<String>, columns: Vec<&'static str>) -> Self {
        Self {
            title: title.into(),
            columns,
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<Cell>) {
        debug_assert_eq!(cells.len(), self.columns.len());
        self.rows.push(cells);
    }

    fn print(&self) {
        let shown: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|row| row.iter().map(Cell::show).collect())
            .collect();
        let widths: Vec<usize> = (0..self.columns.len())
            .map(|i| {
                shown
                    .iter()
                    .map(|row| row.get(i).map_or(0, String::len))
                    .chain([self.columns[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        println!("  {}", self.title);
        let header: Vec<String> = self
            .columns
            .iter()
            .zip(&widths)
            .map(|(name, width)| format!("{name:>width$}"))
            .collect();
        println!("    {}", header.join("  "));
        for (cells, row) in shown.iter().zip(&self.rows) {
            let line: Vec<String> = cells
                .iter()
                .zip(row)
                .zip(&widths)
                .map(|((text, cell), width)| match cell {
                    Cell::Text(_) => format!("{text:<width$}"),
                    _ => format!("{text:>width$}"),
                })
                .collect();
            println!("    {}", line.join("  "));
        }
    }

    fn json(&self) -> Value {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|row| {
                let object: Map<String, Value> = self
                    .columns
                    .iter()
                    .zip(row)
                    .map(|(name, cell)| (json_key(name), cell.json()))
                    .collect();
                Value::Object(object)
            })
            .collect();
        json!({ "title": self.title, "rows": rows })
    }
}

pub enum Status {
    Ran,
    Skipped(String),
    Failed(String),
}

pub struct Section {
    pub scenario: String,
    pub status: Status,
    pub params: Vec<(&'static str, String)>,
    pub tables: Vec<Table>,
    pub notes: Vec<String>,
    /// Lost / duplicate counts per case, checked in quick mode.
    pub integrity: Vec<(String, Integrity)>,
    /// Where the CPU went while the scenario ran.
    pub cpu: Option<Usage>,
    /// What each timed part cost per event.
    pub costs: Vec<Cost>,
}

impl Section {
    pub fn new(scenario: &str, params: Vec<(&'static str, String)>) -> Self {
        Self {
            scenario: scenario.to_owned(),
            status: Status::Ran,
            params,
            tables: Vec::new(),
            notes: Vec::new(),
            integrity: Vec::new(),
            cpu: None,
            costs: Vec::new(),
        }
    }

    pub fn failed(scenario: &str, error: String) -> Self {
        let mut section = Self::new(scenario, Vec::new());
        section.status = Status::Failed(error);
        section
    }

    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    pub fn print(&self) {
        println!();
        println!("== {}  ({})", self.scenario, params_line(&self.params));
        match &self.status {
            Status::Ran => {}
            Status::Skipped(reason) => println!("  SKIPPED: {reason}"),
            Status::Failed(error) => println!("  FAILED: {error}"),
        }
        for table in &self.tables {
            table.print();
        }
        let (cost_tables, cost_notes) = crate::cost::tables(&self.costs);
        if !self.costs.is_empty() {
            for table in &cost_tables {
                table.print();
            }
        }
        for note in self.notes.iter().chain(&cost_notes) {
            println!("  - {note}");
        }
        if let Some(cpu) = &self.cpu {
            println!("  - {}", cpu.line());
            if let Some(warning) = cpu.disturbance() {
                println!("  - {warning}");
            }
        }
    }

    fn json(&self) -> Value {
        let (status, reason) = match &self.status {
            Status::Ran => ("ran", None),
            Status::Skipped(reason) => ("skipped", Some(reason)),
            Status::Failed(error) => ("failed", Some(error)),
        };
        let params: Map<String, Value> = self
            .params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect();
        let integrity: Map<String, Value> = self
            .integrity
            .iter()
            .map(|(label, i)| (label.clone(), json!(i)))
            .collect();
        json!({
            "scenario": self.scenario,
            "status": status,
            "reason": reason,
            "params": params,
            "tables": self.tables.iter().map(Table::json).collect::<Vec<_>>(),
            "integrity": integrity,
            "notes": self.notes,
            "cpu": self.cpu,
            "costs": self.costs.iter().map(Cost::json).collect::<Vec<_>>(),
        })
    }
}

/// A column heading as a JSON key: `deliveries/s` → `deliveries_per_s`.
fn json_key(column: &str) -> String {
    let spelled = column
        .replace("/s", " per s")
        .replace('%', " pct")
        .replace('→', " to ")
        .replace('−', " minus ");
    spelled
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_ascii_lowercase)
        .collect::<Vec<_>>()
        .join("_")
}

fn params_line(params: &[(&'static str, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub struct Verdict {
    pub passed: bool,
    pub problems: Vec<String>,
}

pub struct Report {
    pub machine: Machine,
    pub sections: Vec<Section>,
}

impl Report {
    pub fn new(machine: Machine) -> Self {
        Self {
            machine,
            sections: Vec::new(),
        }
    }

    pub fn print_header(&self, parameters: &[(&'static str, Vec<(&'static str, String)>)]) {
        let m = &self.machine;
        println!("hookline-bench");
        println!("  command:    {}", m.command_line);
        println!("  started:    {}", m.started_at);
        println!("  database:   {}", m.database);
        println!(
            "  machine:    {} CPUs, {}, {} RAM",
            m.cpus, m.cpu_model, m.memory_total
        );
        println!("  hookline:   commit {}", m.hookline_commit);
        println!("  binary:     {}", m.hookline_binary);
        println!("  open files: {}", m.open_files);
        println!("  parameters:");
        for (scenario, params) in parameters {
            println!("    {scenario:<11} {}", params_line(params));
        }
    }

    /// Failed scenarios always fail the run; in quick mode, so does any lost
    /// or duplicated delivery.
    pub fn verdict(&self, quick: bool) -> Verdict {
        let mut problems = Vec::new();
        for section in &self.sections {
            if let Status::Failed(error) = &section.status {
                problems.push(format!("{}: failed: {error}", section.scenario));
            }
            for (label, integrity) in &section.integrity {
                if !integrity.clean() {
                    let problem = format!(
                        "{} {label}: {} lost, {} duplicated (of {})",
                        section.scenario, integrity.lost, integrity.duplicates, integrity.expected
                    );
                    if quick {
                        problems.push(problem);
                    } else {
                        eprintln!("[bench] warning: {problem}");
                    }
                }
            }
        }
        Verdict {
            passed: problems.is_empty(),
            problems,
        }
    }

    pub fn print_summary(&self, verdict: &Verdict) {
        println!();
        if verdict.passed {
            println!("result: OK");
        } else {
            println!("result: FAILED");
            for problem in &verdict.problems {
                println!("  - {problem}");
            }
        }
    }

    pub fn to_json(&self, verdict: &Verdict) -> Value {
        json!({
            "machine": self.machine,
            "passed": verdict.passed,
            "problems": verdict.problems,
            "scenarios": self.sections.iter().map(Section::json).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::json_key;

    #[test]
    fn column_headings_become_snake_case_keys() {
        assert_eq!(json_key("deliveries/s"), "deliveries_per_s");
        assert_eq!(json_key("stats lag s"), "stats_lag_s");
        assert_eq!(json_key("cost %"), "cost_pct");
        assert_eq!(json_key("LAGGED dropped"), "lagged_dropped");
    }
}
