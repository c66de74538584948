//! Reports: functions of findings.
