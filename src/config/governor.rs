//! `[governor]` glue: the section itself lives in `governor::settings` (a
//! leaf below this floor, so the governor need not import the whole
//! configuration); here its own check is put in the configuration's terms.

use super::ConfigProblem;
pub use crate::governor::settings::GovernorSection;

/// What is wrong with the `[governor]` section's values.
pub fn check(section: &GovernorSection) -> Vec<ConfigProblem> {
    section
        .problems()
        .into_iter()
        .map(|(key, message)| ConfigProblem::new(key, message))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_governors_problems_become_config_problems() {
        assert!(check(&GovernorSection::default()).is_empty());
        let g = GovernorSection {
            burst_percent: 101,
            ..GovernorSection::default()
        };
        assert_eq!(check(&g)[0].key, "governor.burst_percent");
    }
}
