//! What a run is asked to do, and what it found.

use crate::check::{DeleteCheck, DurableCheck, LinkCheck, SetCheck};
use crate::history::Op;
use crate::nemesis::FaultKind;
use std::fmt;

/// A whole history: operations, and faults with their virtual times.
pub type Recorded = (Vec<Op>, Vec<(u64, String)>);

/// How to run a seed. The seed decides everything else.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Make the workload bucket last-writer-wins (`allow_mult = false`):
    /// the set check must then see losses under concurrent adders.
    pub lww: bool,
    /// Fault kinds the nemesis draws from.
    pub faults: Vec<FaultKind>,
    /// Virtual milliseconds of workload and faults before healing.
    pub workload_ms: u64,
    /// Keep the whole history in the report (for printing a replay).
    pub keep_history: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            lww: false,
            faults: FaultKind::ALL.to_vec(),
            workload_ms: 15_000,
            keep_history: false,
        }
    }
}

/// The outcome of one seed.
#[derive(Clone, Debug)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// Members at the end.
    pub members: usize,
    /// Machines in the run (members plus spares).
    pub machines: usize,
    /// Client operations recorded.
    pub ops: usize,
    /// Faults injected, by kind.
    pub faults: Vec<(FaultKind, u32)>,
    /// Hash of the history; a replay must produce the same.
    pub digest: u64,
    /// Whether the cluster agreed on a stable layout after healing.
    pub settled: bool,
    /// Each machine's view at the end, when it did not settle.
    pub unsettled: Vec<String>,
    /// The set check.
    pub set: SetCheck,
    /// The durability check.
    pub durable: DurableCheck,
    /// The delete check.
    pub deletes: DeleteCheck,
    /// Tombstones reaped across the cluster during the run.
    pub reaped: u64,
    /// The reference check.
    pub links: LinkCheck,
    /// Replicas of unreferenced blobs collected across the cluster.
    pub collected: u64,
    /// Read-your-writes violations: (key, value written but not read).
    pub ryw_violations: Vec<(String, u64)>,
    /// Keys whose replicas still differed at the convergence deadline.
    pub diverged: Vec<String>,
    /// (machine, key) whose secondary-index entries did not match the
    /// machine's replica after convergence.
    pub index_mismatches: Vec<String>,
    /// Virtual milliseconds until every replica agreed.
    pub converge_ms: u64,
    /// The history itself, when asked for.
    pub history: Option<Recorded>,
}

impl Report {
    /// Whether every check passed. With `lww` the set check is expected
    /// to lose adds, so losses there do not count against the run.
    pub fn ok(&self, cfg: &SimConfig) -> bool {
        self.settled
            && self.set.read
            && (cfg.lww || self.set.lost.is_empty())
            && self.durable.lost.is_empty()
            && self.deletes.resurrected.is_empty()
            && self.links.collected.is_empty()
            && self.ryw_violations.is_empty()
            && self.diverged.is_empty()
            && self.index_mismatches.is_empty()
    }

    /// The command that replays this seed exactly.
    pub fn replay_command(&self, cfg: &SimConfig) -> String {
        let lww = if cfg.lww { " --lww" } else { "" };
        format!(
            "cargo run -p sim --release -- --seed {}{lww} --workload-ms {} --history",
            self.seed, cfg.workload_ms
        )
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seed {}: {} members of {} machines, {} ops, digest {:016x}",
            self.seed, self.members, self.machines, self.ops, self.digest
        )?;
        let faults: Vec<String> = self
            .faults
            .iter()
            .map(|(k, n)| format!("{k:?}×{n}"))
            .collect();
        writeln!(f, "  faults: {}", faults.join(" "))?;
        writeln!(
            f,
            "  set: {} acknowledged, {} lost, {} unacknowledged but present{}",
            self.set.acknowledged,
            self.set.lost.len(),
            self.set.unacknowledged_present,
            if self.set.read {
                ""
            } else {
                " (FINAL READ FAILED)"
            }
        )?;
        writeln!(
            f,
            "  durable: {} acknowledged, {} lost {:?}",
            self.durable.acknowledged,
            self.durable.lost.len(),
            self.durable.lost.iter().take(5).collect::<Vec<_>>()
        )?;
        writeln!(
            f,
            "  deletes: {} acknowledged, {} came back {:?}; {} tombstones reaped",
            self.deletes.acknowledged,
            self.deletes.resurrected.len(),
            self.deletes.resurrected.iter().take(5).collect::<Vec<_>>(),
            self.reaped
        )?;
        writeln!(
            f,
            "  references: {} records standing, {} of their blobs collected {:?}; {} unreferenced blob replicas collected",
            self.links.standing,
            self.links.collected.len(),
            self.links.collected.iter().take(5).collect::<Vec<_>>(),
            self.collected
        )?;
        writeln!(
            f,
            "  read-your-writes violations: {} {:?}",
            self.ryw_violations.len(),
            self.ryw_violations.iter().take(5).collect::<Vec<_>>()
        )?;
        writeln!(
            f,
            "  index entries not matching their replica: {} {:?}",
            self.index_mismatches.len(),
            self.index_mismatches.iter().take(3).collect::<Vec<_>>()
        )?;
        write!(
            f,
            "  convergence: {} keys diverged after {} ms {:?}{}",
            self.diverged.len(),
            self.converge_ms,
            self.diverged.iter().take(3).collect::<Vec<_>>(),
            if self.settled {
                ""
            } else {
                "; LAYOUT DID NOT SETTLE"
            }
        )?;
        for line in &self.unsettled {
            write!(f, "\n    {line}")?;
        }
        Ok(())
    }
}
