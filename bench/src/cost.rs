//! What one event cost over a scenario's timed part: CPU of the server and
//! of the database (from /proc), SQL statements (from `pg_stat_statements`)
//! and the server's writes by the way they went (`writes`), divided by the
//! events and deliveries it completed.

use serde_json::{Value, json};

use crate::{
    cpu::{Meter, PartCpu},
    report::{Cell, Table},
    server::Server,
    statements::{self, Count, Statements},
    writes::{Reading, WAYS, WRITERS, Writes},
};

/// Started just before a timed part.
pub struct CostMeter {
    cpu: Meter,
    /// Whether the statement counters were reset (why not, otherwise).
    reset: Result<(), String>,
    writes: Reading,
}

/// One timed part's cost.
pub struct Cost {
    pub case: String,
    pub events: u64,
    pub deliveries: u64,
    pub cpu: PartCpu,
    pub statements: Count,
    pub writes: Writes,
}

impl CostMeter {
    /// Reads the servers' writes and resets the statement counters, then
    /// starts the clocks, so that neither's own work is counted.
    /// `peers`: other instances on `server`'s database, counted with it.
    pub async fn start(statements: &Statements, server: &Server, peers: &[Server]) -> Self {
        let writes = Reading::take(&servers(server, peers)).await;
        let reset = statements.reset().await;
        Self {
            cpu: Meter::start(&pids(server, peers), server.postgres_database()),
            reset,
            writes,
        }
    }

    /// Stops the clocks, then reads the statements and the writes;
    /// `server` is the one running now.
    pub async fn finish(
        self,
        statements: &Statements,
        (server, peers): (&Server, &[Server]),
        case: &str,
        events: u64,
        deliveries: u64,
    ) -> Cost {
        let cpu = self.cpu.finish(&pids(server, peers));
        let statements = statements
            .read(server.postgres_database(), self.reset)
            .await;
        let writes = Reading::take(&servers(server, peers))
            .await
            .since(&self.writes);
        Cost {
            case: case.to_owned(),
            events,
            deliveries,
            cpu,
            statements,
            writes,
        }
    }
}

fn servers(server: &Server, peers: &[Server]) -> Vec<(u32, std::net::SocketAddr)> {
    std::iter::once(server)
        .chain(peers)
        .map(|s| (s.pid, s.addr))
        .collect()
}

fn pids(server: &Server, peers: &[Server]) -> Vec<u32> {
    std::iter::once(server.pid)
        .chain(peers.iter().map(|p| p.pid))
        .collect()
}

/// Milliseconds of `seconds` per unit; NaN for none.
fn ms_per(seconds: f64, units: u64) -> f64 {
    if units == 0 {
        f64::NAN
    } else {
        seconds * 1000.0 / units as f64
    }
}

fn per_f64(count: f64, units: u64) -> f64 {
    if units == 0 {
        f64::NAN
    } else {
        count / units as f64
    }
}

/// Writes per event by writer and way, for the parts whose server counted
/// them.
fn writes_table(costs: &[Cost]) -> Option<Table> {
    // WRITERS × WAYS, in their order.
    let columns = vec![
        "case",
        "publish one_statement",
        "publish transaction",
        "publish refused",
        "recorder one_statement",
        "recorder transaction",
        "recorder refused",
    ];
    let mut table = Table::new(
        "writes per event: group commits of publishes and batches of attempts, by way",
        columns,
    );
    let mut any = false;
    for cost in costs.iter().filter(|c| !c.writes.is_empty()) {
        any = true;
        let mut row = vec![Cell::Text(cost.case.clone())];
        for writer in WRITERS {
            for way in WAYS {
                row.push(Cell::Num(
                    per_f64(cost.writes.get(writer, way), cost.events),
                    3,
                ));
            }
        }
        table.row(row);
    }
    any.then_some(table)
}

fn per(count: u64, units: u64) -> f64 {
    if units == 0 {
        f64::NAN
    } else {
        count as f64 / units as f64
    }
}

impl Cost {
    pub fn server_ms_per_event(&self) -> f64 {
        ms_per(self.cpu.server_s, self.events)
    }

    /// Server and database together; on SQLite the server alone holds both.
    pub fn total_ms_per_event(&self) -> f64 {
        ms_per(
            self.cpu.server_s + self.cpu.db_s.unwrap_or(0.0),
            self.events,
        )
    }

    pub fn json(&self) -> Value {
        let c = &self.cpu;
        let finite = |x: f64| if x.is_finite() { json!(x) } else { Value::Null };
        let db = |units: u64, seconds: Option<f64>| seconds.map(|s| finite(ms_per(s, units)));
        let statements = match &self.statements {
            Count::Counted(all) => json!({
                "available": true,
                "total": self.statements.total_calls(),
                "per_event": finite(per(self.statements.total_calls().unwrap_or(0), self.events)),
                "per_delivery": finite(per(self.statements.total_calls().unwrap_or(0), self.deliveries)),
                "top": all.iter().take(statements::TOP).map(|s| json!({
                    "calls": s.calls,
                    "calls_per_event": finite(per(s.calls, self.events)),
                    "total_exec_ms": s.total_exec_time,
                    "query": statements::short_query(&s.query),
                })).collect::<Vec<_>>(),
            }),
            Count::NotAvailable(reason) => json!({ "available": false, "reason": reason }),
        };
        json!({
            "case": self.case,
            "events": self.events,
            "deliveries": self.deliveries,
            "cpu": c,
            "db": if c.db_s.is_some() { "postgres" } else { "sqlite (in server)" },
            "server_ms_per_event": finite(self.server_ms_per_event()),
            "db_ms_per_event": db(self.events, c.db_s),
            "db_backends_ms_per_event": db(self.events, c.db_backends_s),
            "total_ms_per_event": finite(self.total_ms_per_event()),
            "server_ms_per_delivery": finite(ms_per(c.server_s, self.deliveries)),
            "db_ms_per_delivery": db(self.deliveries, c.db_s),
            "statements": statements,
            "writes": self.writes.json(self.events),
        })
    }

    fn row(&self) -> Vec<Cell> {
        let c = &self.cpu;
        let ms = |x: f64| Cell::Num(x, 3);
        let db = |units: u64, seconds: Option<f64>| {
            seconds.map_or(Cell::Text("in server".into()), |s| ms(ms_per(s, units)))
        };
        let statements = match self.statements.total_calls() {
            Some(calls) => Cell::Num(per(calls, self.events), 1),
            None => Cell::Text("n/a".into()),
        };
        let machine = c.wall_s * c.cores as f64;
        vec![
            Cell::Text(self.case.clone()),
            Cell::Int(self.events),
            Cell::Int(self.deliveries),
            Cell::Num(c.wall_s, 2),
            ms(self.server_ms_per_event()),
            db(self.events, c.db_s),
            db(self.events, c.db_backends_s),
            ms(self.total_ms_per_event()),
            ms(ms_per(c.server_s, self.deliveries)),
            db(self.deliveries, c.db_s),
            statements,
            if self.writes.is_empty() {
                Cell::Text("n/a".into())
            } else {
                Cell::Num(per_f64(self.writes.total(), self.events), 2)
            },
            Cell::Num(c.other_s / machine * 100.0, 0),
        ]
    }
}

/// The report's lines for a scenario's costs: one table, then each part's
/// most called statements.
pub fn tables(costs: &[Cost]) -> (Vec<Table>, Vec<String>) {
    let mut table = Table::new(
        "cost over the timed part: CPU ms per event (ev) and per delivery (dlv), SQL statements per event",
        vec![
            "case",
            "events",
            "deliveries",
            "wall s",
            "server ms/ev",
            "db ms/ev",
            "db backends ms/ev",
            "server+db ms/ev",
            "server ms/dlv",
            "db ms/dlv",
            "statements/ev",
            "writes/ev",
            "other %",
        ],
    );
    let mut tables = Vec::new();
    let mut notes = Vec::new();
    for cost in costs {
        table.row(cost.row());
        match &cost.statements {
            Count::Counted(all) => {
                let mut top = Table::new(
                    format!(
                        "{}: the {} most called statements",
                        cost.case,
                        statements::TOP
                    ),
                    vec!["calls", "calls/ev", "mean ms", "query"],
                );
                for s in all.iter().take(statements::TOP) {
                    top.row(vec![
                        Cell::Int(s.calls),
                        Cell::Num(per(s.calls, cost.events), 2),
                        Cell::Num(s.total_exec_time / s.calls.max(1) as f64, 3),
                        Cell::Text(statements::short_query(&s.query)),
                    ]);
                }
                tables.push(top);
            }
            Count::NotAvailable(reason) => {
                let note = format!("statements: n/a ({reason})");
                if !notes.contains(&note) {
                    notes.push(note);
                }
            }
        }
    }
    if let Some(writes) = writes_table(costs) {
        tables.insert(0, writes);
    }
    tables.insert(0, table);
    if let Some(first) = costs.first() {
        let db = if first.cpu.db_s.is_some() {
            "db: every PostgreSQL process (also its WAL writer and checkpointer, and any other \
             database's work); db backends: the server's own connections"
        } else {
            "SQLite runs inside the server: its CPU is the server's"
        };
        notes.insert(
            0,
            format!(
                "cost: CPU time from /proc, from just before the first publish until the last \
                 expected arrival; {db}; other %: other programs' share of the machine meanwhile \
                 (over 10: disturbed)"
            ),
        );
    }
    (tables, notes)
}
