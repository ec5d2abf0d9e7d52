//! Readings the suite takes: process CPU and memory from `/proc`, Redis CPU and
//! per-command statistics from `INFO`, and percentiles.

use std::collections::BTreeMap;

use anyhow::Context;

/// CPU time of a process so far (user + system), in clock ticks.
pub fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    parse_stat_ticks(&stat).with_context(|| format!("parsing /proc/{pid}/stat"))
}

/// `utime + stime` from a `/proc/PID/stat` line. The command name (field 2) may
/// contain spaces and parentheses, so fields are counted after the last `)`.
fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Busy clock ticks of the whole machine so far (all CPUs, from `/proc/stat`).
pub fn machine_busy_ticks() -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    parse_machine_busy(&stat).context("parsing /proc/stat")
}

/// Everything but idle and iowait on the `cpu` line; steal counts as busy, since
/// another tenant's use of the host slows the figures just as well.
fn parse_machine_busy(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal
    Some(v.iter().sum::<u64>() - v.get(3)? - v.get(4)?)
}

/// Resident set size now and its high-water mark, in KiB.
pub fn memory_kib(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .with_context(|| format!("no {name} in /proc/{pid}/status"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 when that fails).
pub fn clock_ticks_per_s() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// `used_cpu_sys + used_cpu_user` (seconds) from `INFO cpu`.
pub fn parse_info_cpu(info: &str) -> Option<f64> {
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.parse::<f64>().ok())
    };
    Some(field("used_cpu_sys")? + field("used_cpu_user")?)
}

/// Calls and total µs of one command, from `INFO commandstats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommandStat {
    pub calls: u64,
    pub usec: u64,
}

/// Parses `cmdstat_NAME:calls=C,usec=U,...` lines into NAME -> stat.
pub fn parse_commandstats(info: &str) -> BTreeMap<String, CommandStat> {
    let mut out = BTreeMap::new();
    for line in info.lines() {
        let Some((name, values)) = line
            .trim()
            .strip_prefix("cmdstat_")
            .and_then(|l| l.split_once(':'))
        else {
            continue;
        };
        let mut stat = CommandStat::default();
        for kv in values.split(',') {
            match kv.split_once('=') {
                Some(("calls", v)) => stat.calls = v.parse().unwrap_or(0),
                Some(("usec", v)) => stat.usec = v.parse().unwrap_or(0),
                _ => {}
            }
        }
        out.insert(name.to_owned(), stat);
    }
    out
}

/// What each command added between two `INFO commandstats` readings, busiest first.
pub fn commandstats_delta(
    before: &BTreeMap<String, CommandStat>,
    after: &BTreeMap<String, CommandStat>,
) -> Vec<(String, CommandStat)> {
    let mut out: Vec<(String, CommandStat)> = after
        .iter()
        .filter_map(|(name, a)| {
            let b = before.get(name).copied().unwrap_or_default();
            let d = CommandStat {
                calls: a.calls.saturating_sub(b.calls),
                usec: a.usec.saturating_sub(b.usec),
            };
            (d.calls > 0).then(|| (name.clone(), d))
        })
        .collect();
    out.sort_by(|a, b| b.1.usec.cmp(&a.1.usec).then_with(|| a.0.cmp(&b.0)));
    out
}

/// Nearest-rank percentile of sorted samples (`p` in 0..=100).
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_ticks_are_counted_after_the_command_name() {
        let line = "4242 (queue (bench) x) S 1 4242 4242 0 -1 4194560 5000 0 0 0 \
                    150 30 0 0 20 0 3 0 100 1000000 500 18446744073709551615";
        assert_eq!(parse_stat_ticks(line), Some(180));
    }

    #[test]
    fn machine_busy_time_leaves_out_idle_and_iowait() {
        let stat = "cpu  100 1 20 5000 7 0 3 2 0 0\ncpu0 50 0 10 2500 3 0 1 1 0 0\n";
        assert_eq!(parse_machine_busy(stat), Some(126));
    }

    #[test]
    fn info_cpu_adds_system_and_user_time() {
        let info = "# CPU\r\nused_cpu_sys:1.500000\r\nused_cpu_user:2.250000\r\n\
                    used_cpu_sys_children:9.0\r\nused_cpu_sys_main_thread:1.4\r\n";
        assert_eq!(parse_info_cpu(info), Some(3.75));
    }

    #[test]
    fn commandstats_deltas_skip_idle_commands_and_sort_by_time() {
        let before = parse_commandstats(
            "# Commandstats\r\ncmdstat_xack:calls=10,usec=20,usec_per_call=2.00,rejected_calls=0\r\n\
             cmdstat_ping:calls=1,usec=1,usec_per_call=1.00\r\n",
        );
        let after = parse_commandstats(
            "cmdstat_xack:calls=30,usec=60,usec_per_call=2.00\r\n\
             cmdstat_ping:calls=1,usec=1\r\ncmdstat_evalsha:calls=5,usec=500\r\n",
        );
        let delta = commandstats_delta(&before, &after);
        assert_eq!(
            delta,
            vec![
                (
                    "evalsha".to_owned(),
                    CommandStat {
                        calls: 5,
                        usec: 500
                    }
                ),
                (
                    "xack".to_owned(),
                    CommandStat {
                        calls: 20,
                        usec: 40
                    }
                ),
            ]
        );
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }
}
