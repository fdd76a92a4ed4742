//! TLS-RPT day counts (RFC 8460): one row per UTC day and policy domain,
//! kept until that day's report is sent, so that a restart loses no count.

use chrono::NaiveDate;
use redb::{ReadableTable, TableDefinition};

use super::LocalStore;
use crate::model::tlsrpt::{DayCounts, ReportPolicy, SessionResult};
use crate::store::StoreError;
use crate::store::db::{decode, encode};

pub(crate) const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("tlsrpt_days");

fn key(day: NaiveDate, domain: &str) -> String {
    format!("{day} {domain}")
}

impl LocalStore {
    /// Counts one session under `policy` on `day` (a lazy write: a power
    /// failure may lose the last second's counts, never the day's).
    pub fn count_tls_session(
        &self,
        day: NaiveDate,
        policy: &ReportPolicy,
        result: &SessionResult,
    ) -> Result<(), StoreError> {
        let k = key(day, &policy.policy_domain);
        self.db.write_lazy(|tx| {
            let mut t = tx.open_table(TABLE)?;
            let mut counts = match t.get(k.as_str())? {
                Some(v) => decode::<DayCounts>("tlsrpt_days", &k, v.value())?,
                None => DayCounts::new(day, policy.clone()),
            };
            counts.policy = policy.clone();
            counts.add(result);
            t.insert(k.as_str(), encode(&counts).as_slice())?;
            Ok(())
        })
    }

    /// Every policy domain's counts of `day`.
    pub fn tls_day_counts(&self, day: NaiveDate) -> Result<Vec<DayCounts>, StoreError> {
        let prefix = format!("{day} ");
        self.db.read(|tx| {
            let t = tx.open_table(TABLE)?;
            let mut out = Vec::new();
            for row in t.range(prefix.as_str()..)? {
                let (k, v) = row?;
                if !k.value().starts_with(&prefix) {
                    break;
                }
                out.push(decode("tlsrpt_days", k.value(), v.value())?);
            }
            Ok(out)
        })
    }

    /// The days that have counts, oldest first.
    pub fn tls_days(&self) -> Result<Vec<NaiveDate>, StoreError> {
        self.db.read(|tx| {
            let t = tx.open_table(TABLE)?;
            let mut out: Vec<NaiveDate> = Vec::new();
            for row in t.iter()? {
                let (k, _) = row?;
                let day = k.value().split(' ').next().and_then(|d| d.parse().ok());
                if let Some(d) = day
                    && out.last() != Some(&d)
                {
                    out.push(d);
                }
            }
            Ok(out)
        })
    }

    /// Forgets one domain's counts of `day` (its report is on its way), durably.
    pub fn forget_tls_day(&self, day: NaiveDate, domain: &str) -> Result<(), StoreError> {
        self.db.write(|tx| {
            tx.open_table(TABLE)?.remove(key(day, domain).as_str())?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_per_day_and_domain_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let p = |d: &str| ReportPolicy {
            policy_type: "sts".into(),
            policy_string: vec![],
            policy_domain: d.into(),
            mx_host: vec![],
        };
        let d1: NaiveDate = "2026-12-01".parse().unwrap();
        let d2: NaiveDate = "2026-12-02".parse().unwrap();
        {
            let s = crate::store::open(dir.path()).unwrap().0;
            s.count_tls_session(d1, &p("a.example"), &SessionResult::Success)
                .unwrap();
            s.count_tls_session(d1, &p("a.example"), &SessionResult::Success)
                .unwrap();
            s.count_tls_session(d1, &p("b.example"), &SessionResult::Success)
                .unwrap();
            s.count_tls_session(d2, &p("a.example"), &SessionResult::Success)
                .unwrap();
        }
        let s = crate::store::open(dir.path()).unwrap().0;
        assert_eq!(s.tls_days().unwrap(), vec![d1, d2]);
        let day = s.tls_day_counts(d1).unwrap();
        assert_eq!(day.len(), 2);
        assert_eq!(day[0].success, 2);
        s.forget_tls_day(d1, "a.example").unwrap();
        assert_eq!(s.tls_day_counts(d1).unwrap().len(), 1);
        assert_eq!(s.tls_day_counts(d2).unwrap()[0].success, 1);
    }
}
