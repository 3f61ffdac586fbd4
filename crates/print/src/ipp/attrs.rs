//! The engine's jobs and printers as IPP attributes, and the names the face
//! reads from requests.

use std::collections::{BTreeMap, HashSet};

use backroom_api::print::{
    DEFAULT_PRIORITY, Job, JobState, MAX_PRIORITY, PrinterInfo, PrinterState, Printers,
};
use ipp::attribute::IppAttribute;
use ipp::model::Operation;
use ipp::value::IppValue;

use super::message::{
    attr, bounded_name, charset, integer, keyword, keywords, language, mime, name, text, uri,
};

/// The paths of the face, as CUPS has them.
pub const PRINTERS_PATH: &str = "/printers/";
pub const CLASSES_PATH: &str = "/classes/";
pub const JOBS_PATH: &str = "/jobs/";
/// The default printer, at the path IPP Everywhere clients try first.
pub const DEFAULT_PATH: &str = "/ipp/print";

/// The document formats the face takes; each goes to the device as it came.
pub const FORMATS: [&str; 3] = ["application/octet-stream", "text/plain", "application/pdf"];

/// `job-hold-until` values: the only two the engine has.
pub const NO_HOLD: &str = "no-hold";
pub const INDEFINITE: &str = "indefinite";

/// The operations the face answers, in `operations-supported` order.
pub const OPERATIONS: [Operation; 17] = [
    Operation::PrintJob,
    Operation::ValidateJob,
    Operation::CreateJob,
    Operation::SendDocument,
    Operation::CancelJob,
    Operation::GetJobAttributes,
    Operation::GetJobs,
    Operation::GetPrinterAttributes,
    Operation::HoldJob,
    Operation::ReleaseJob,
    Operation::RestartJob,
    Operation::PausePrinter,
    Operation::ResumePrinter,
    Operation::SetJobAttributes,
    Operation::CupsGetDefault,
    Operation::CupsGetPrinters,
    Operation::CupsGetClasses,
];

/// Operation attributes the face reads or may safely ignore; any other is
/// reported as unsupported.
pub const KNOWN_OPERATION_ATTRIBUTES: [&str; 26] = [
    "attributes-charset",
    "attributes-natural-language",
    "printer-uri",
    "job-uri",
    "job-id",
    "requesting-user-name",
    "requesting-user-uri",
    "job-name",
    "document-name",
    "document-format",
    "document-natural-language",
    "ipp-attribute-fidelity",
    "compression",
    "requested-attributes",
    "which-jobs",
    "my-jobs",
    "limit",
    "last-document",
    "job-k-octets",
    "job-impressions",
    "job-media-sheets",
    "purge-job",
    "message",
    "first-printer-name",
    "printer-type",
    "printer-type-mask",
];

/// Job template attributes the engine keeps.
pub const JOB_PRIORITY: &str = "job-priority";
pub const JOB_HOLD_UNTIL: &str = "job-hold-until";
pub const COPIES: &str = "copies";

/// Job template attributes that describe the paper and finish: the face
/// offers one value of each (see `media`), and documents reach the device as
/// they come, so these are taken and left to the document.
pub const DESCRIBED_BY_DOCUMENT: [&str; 8] = [
    "media",
    "media-col",
    "sides",
    "finishings",
    "print-quality",
    "orientation-requested",
    "output-bin",
    "printer-resolution",
];

/// Which attributes a request asked for (`requested-attributes`).
#[derive(Debug)]
pub struct Wanted {
    all: bool,
    names: HashSet<String>,
}

impl Wanted {
    /// `requested-attributes` as given, or `default` when absent.
    pub fn from(value: Option<&IppValue>, default: &[&str]) -> Wanted {
        let mut names: HashSet<String> = HashSet::new();
        match value {
            Some(IppValue::Array(values)) => names.extend(values.iter().filter_map(as_keyword)),
            Some(value) => names.extend(as_keyword(value)),
            None => names.extend(default.iter().map(|s| (*s).to_owned())),
        }
        let groups = [
            "all",
            "job-description",
            "job-template",
            "printer-description",
        ];
        Wanted {
            all: groups.iter().any(|g| names.contains(*g)),
            names,
        }
    }

    fn wants(&self, name: &str) -> bool {
        self.all || self.names.contains(name)
    }

    /// The attributes `make` gives, kept only when asked for.
    fn keep(&self, out: &mut Vec<IppAttribute>, name: &str, make: impl FnOnce() -> IppValue) {
        if self.wants(name) {
            out.push(attr(name, make()));
        }
    }
}

fn as_keyword(value: &IppValue) -> Option<String> {
    match value {
        IppValue::Keyword(k) => Some(k.as_str().to_owned()),
        _ => None,
    }
}

/// Where a job or printer lives, as an absolute URI on this server.
#[derive(Debug, Clone)]
pub struct Site {
    /// `ipp`, or `ipps` over TLS.
    pub scheme: &'static str,
    /// The `Host` the client used: the URIs it gets back work for it.
    pub host: String,
    /// Seconds since the epoch when the face started.
    pub started: i64,
    /// Seconds since the epoch now.
    pub now: i64,
    /// `basic` when users are configured, else `requesting-user-name`.
    pub authentication: &'static str,
}

impl Site {
    pub fn printer_uri(&self, printers: &Printers, name: &str) -> String {
        let kind = if printers.classes.iter().any(|c| c.name == name) {
            CLASSES_PATH
        } else {
            PRINTERS_PATH
        };
        format!("{}://{}{kind}{name}", self.scheme, self.host)
    }

    pub fn job_uri(&self, id: u64) -> String {
        format!("{}://{}{JOBS_PATH}{id}", self.scheme, self.host)
    }
}

/// `job-state` (RFC 8011 section 5.3.7).
pub fn job_state(state: JobState) -> i32 {
    match state {
        JobState::Pending => 3,
        JobState::Held => 4,
        JobState::Printing => 5,
        JobState::Cancelled => 7,
        JobState::Aborted => 8,
        JobState::Completed => 9,
    }
}

fn job_reason(state: JobState) -> &'static str {
    match state {
        JobState::Pending => "job-queued",
        JobState::Held => "job-hold-until-specified",
        JobState::Printing => "job-printing",
        JobState::Cancelled => "job-canceled-by-user",
        JobState::Aborted => "aborted-by-system",
        JobState::Completed => "job-completed-successfully",
    }
}

fn seconds(ms: Option<i64>) -> IppValue {
    ms.map_or(IppValue::NoValue, |ms| integer(ms / 1000))
}

/// A job's attributes, as many as `wanted` asks for.
pub fn job(job: &Job, site: &Site, printers: &Printers, wanted: &Wanted) -> Vec<IppAttribute> {
    let mut out = Vec::new();
    let w = wanted;
    w.keep(&mut out, "job-id", || integer(job.id as i64));
    w.keep(&mut out, "job-uri", || uri(&site.job_uri(job.id)));
    w.keep(&mut out, "job-printer-uri", || {
        uri(&site.printer_uri(printers, &job.printer))
    });
    w.keep(&mut out, "job-name", || name(&job.name));
    w.keep(&mut out, "job-originating-user-name", || name(&job.owner));
    w.keep(&mut out, "job-state", || {
        IppValue::Enum(job_state(job.state))
    });
    w.keep(&mut out, "job-state-reasons", || {
        keyword(job_reason(job.state))
    });
    w.keep(&mut out, "job-state-message", || {
        text(job.last_error.as_deref().unwrap_or(job.state.as_str()))
    });
    w.keep(&mut out, JOB_PRIORITY, || integer(job.priority.into()));
    // The priority the queue orders by now, aging included (PWG 5100.7).
    w.keep(&mut out, "job-priority-actual", || {
        integer(job.effective_priority.into())
    });
    w.keep(&mut out, JOB_HOLD_UNTIL, || {
        keyword(if job.state == JobState::Held {
            INDEFINITE
        } else {
            NO_HOLD
        })
    });
    w.keep(&mut out, COPIES, || integer(job.copies.into()));
    w.keep(&mut out, "job-k-octets", || {
        integer(job.size.div_ceil(1024) as i64)
    });
    w.keep(&mut out, "job-k-octets-processed", || {
        integer(job.bytes_done.div_ceil(1024) as i64)
    });
    w.keep(&mut out, "job-impressions-completed", || {
        integer(job.pages_done as i64)
    });
    w.keep(&mut out, "number-of-documents", || integer(1));
    if let Some(device) = &job.device {
        w.keep(&mut out, "output-device-assigned", || name(device));
    }
    w.keep(&mut out, "time-at-creation", || {
        seconds(Some(job.submitted_ms))
    });
    w.keep(&mut out, "time-at-processing", || seconds(job.started_ms));
    w.keep(&mut out, "time-at-completed", || seconds(job.finished_ms));
    w.keep(&mut out, "job-printer-up-time", || integer(site.now));
    out
}

/// One printer or class as IPP sees it.
#[derive(Debug)]
pub struct Destination<'a> {
    pub name: &'a str,
    /// The members, for a class.
    pub members: Option<&'a [String]>,
    pub state: PrinterState,
    pub accepting: bool,
    pub queued: u64,
    pub device: String,
}

impl<'a> Destination<'a> {
    /// The printer or class `name`, if there is one.
    pub fn find(printers: &'a Printers, name: &'a str) -> Option<Destination<'a>> {
        if let Some(p) = printers.printers.iter().find(|p| p.name == name) {
            return Some(Destination::printer(p));
        }
        let class = printers.classes.iter().find(|c| c.name == name)?;
        let members: Vec<&PrinterInfo> = printers
            .printers
            .iter()
            .filter(|p| class.members.contains(&p.name))
            .collect();
        let state = if members.iter().any(|m| m.state == PrinterState::Printing) {
            PrinterState::Printing
        } else if members.iter().any(|m| m.state == PrinterState::Idle) {
            PrinterState::Idle
        } else {
            PrinterState::Paused
        };
        Some(Destination {
            name,
            members: Some(&class.members),
            state,
            accepting: members.iter().any(|m| m.accepting),
            queued: 0,
            device: format!("class of {}", class.members.join(", ")),
        })
    }

    fn printer(p: &'a PrinterInfo) -> Destination<'a> {
        Destination {
            name: &p.name,
            members: None,
            state: p.state,
            accepting: p.accepting,
            queued: p.queue_len,
            device: p.device.clone(),
        }
    }
}

fn printer_state(state: PrinterState) -> (i32, &'static str) {
    match state {
        PrinterState::Idle => (3, "none"),
        PrinterState::Printing => (4, "none"),
        PrinterState::Paused => (5, "paused"),
        PrinterState::Error => (5, "other-error"),
    }
}

/// A printer's or class's attributes, as many as `wanted` asks for.
pub fn printer(
    dest: &Destination<'_>,
    site: &Site,
    printers: &Printers,
    wanted: &Wanted,
) -> Vec<IppAttribute> {
    let mut out = Vec::new();
    let w = wanted;
    let (state, reason) = printer_state(dest.state);
    w.keep(&mut out, "printer-uri-supported", || {
        uri(&site.printer_uri(printers, dest.name))
    });
    w.keep(&mut out, "uri-security-supported", || {
        keyword(if site.scheme == "ipps" { "tls" } else { "none" })
    });
    w.keep(&mut out, "uri-authentication-supported", || {
        keyword(site.authentication)
    });
    w.keep(&mut out, "printer-name", || name(dest.name));
    w.keep(&mut out, "printer-info", || {
        text(&format!("{} ({})", dest.name, dest.device))
    });
    w.keep(&mut out, "printer-location", || text(""));
    w.keep(&mut out, "printer-make-and-model", || {
        text("backroom-print")
    });
    w.keep(&mut out, "printer-state", || IppValue::Enum(state));
    w.keep(&mut out, "printer-state-reasons", || keyword(reason));
    w.keep(&mut out, "printer-state-message", || {
        text(&format!("{:?}", dest.state).to_lowercase())
    });
    w.keep(&mut out, "printer-is-accepting-jobs", || {
        IppValue::Boolean(dest.accepting)
    });
    w.keep(&mut out, "queued-job-count", || integer(dest.queued as i64));
    w.keep(&mut out, "printer-up-time", || integer(site.now.max(1)));
    w.keep(&mut out, "printer-state-change-time", || {
        integer(site.started)
    });
    w.keep(&mut out, "printer-type", || {
        // CUPS's printer-type bits: a class (1) or a printer, and remote (2).
        IppValue::Enum(if dest.members.is_some() { 1 } else { 0 } | 2)
    });
    if let Some(members) = dest.members {
        w.keep(&mut out, "member-names", || {
            IppValue::Array(members.iter().map(|m| name(m)).collect())
        });
    }
    w.keep(&mut out, "operations-supported", || {
        IppValue::Array(
            OPERATIONS
                .iter()
                .map(|op| IppValue::Enum(*op as i32))
                .collect(),
        )
    });
    w.keep(&mut out, "ipp-versions-supported", || {
        keywords(&["1.0", "1.1", "2.0"])
    });
    w.keep(&mut out, "ipp-features-supported", || keyword("none"));
    w.keep(&mut out, "charset-configured", || charset("utf-8"));
    w.keep(&mut out, "charset-supported", || {
        IppValue::Array(vec![charset("utf-8"), charset("us-ascii")])
    });
    w.keep(&mut out, "natural-language-configured", || language("en"));
    w.keep(&mut out, "generated-natural-language-supported", || {
        language("en")
    });
    w.keep(&mut out, "document-format-default", || mime(FORMATS[0]));
    w.keep(&mut out, "document-format-supported", || {
        IppValue::Array(FORMATS.iter().map(|f| mime(f)).collect())
    });
    w.keep(&mut out, "compression-supported", || keyword("none"));
    w.keep(&mut out, "pdl-override-supported", || {
        keyword("not-attempted")
    });
    w.keep(&mut out, "job-priority-supported", || {
        integer(MAX_PRIORITY.into())
    });
    w.keep(&mut out, "job-priority-default", || {
        integer(DEFAULT_PRIORITY.into())
    });
    w.keep(&mut out, "job-hold-until-supported", || {
        keywords(&[NO_HOLD, INDEFINITE])
    });
    w.keep(&mut out, "job-hold-until-default", || keyword(NO_HOLD));
    w.keep(&mut out, "copies-supported", || IppValue::RangeOfInteger {
        min: 1,
        max: 100,
    });
    w.keep(&mut out, "copies-default", || integer(1));
    w.keep(&mut out, "job-creation-attributes-supported", || {
        keywords(&[COPIES, JOB_PRIORITY, JOB_HOLD_UNTIL])
    });
    w.keep(&mut out, "job-settable-attributes-supported", || {
        keywords(&[JOB_PRIORITY, JOB_HOLD_UNTIL])
    });
    w.keep(&mut out, "multiple-document-jobs-supported", || {
        IppValue::Boolean(false)
    });
    w.keep(&mut out, "multiple-operation-time-out", || integer(300));
    w.keep(&mut out, "color-supported", || IppValue::Boolean(false));
    w.keep(&mut out, "which-jobs-supported", || {
        keywords(&["completed", "not-completed", "all"])
    });
    media(&mut out, w);
    w.keep(&mut out, "printer-more-info", || {
        uri(&format!("http://{}{PRINTERS_PATH}{}", site.host, dest.name))
    });
    out
}

/// The one paper and finish the face offers. Documents go to the device as
/// they come, so these only describe that, for clients that need a value
/// (IPP/2.0, PWG 5100.12).
fn media(out: &mut Vec<IppAttribute>, w: &Wanted) {
    const A4: &str = "iso_a4_210x297mm";
    let size = || {
        let mut size = BTreeMap::new();
        size.insert(bounded_name("x-dimension"), integer(21000));
        size.insert(bounded_name("y-dimension"), integer(29700));
        IppValue::Collection(size)
    };
    let col = || {
        let mut col = BTreeMap::new();
        col.insert(bounded_name("media-size"), size());
        IppValue::Collection(col)
    };
    let resolution = || IppValue::Resolution {
        cross_feed: 300,
        feed: 300,
        units: 3,
    };
    w.keep(out, "media-default", || keyword(A4));
    w.keep(out, "media-supported", || keyword(A4));
    w.keep(out, "media-ready", || keyword(A4));
    w.keep(out, "media-col-default", col);
    w.keep(out, "media-col-ready", col);
    w.keep(out, "media-col-supported", || keyword("media-size"));
    w.keep(out, "media-size-supported", size);
    w.keep(out, "finishings-default", || IppValue::Enum(3));
    w.keep(out, "finishings-supported", || IppValue::Enum(3));
    w.keep(out, "orientation-requested-default", || IppValue::Enum(3));
    w.keep(out, "orientation-requested-supported", || IppValue::Enum(3));
    w.keep(out, "output-bin-default", || keyword("face-down"));
    w.keep(out, "output-bin-supported", || keyword("face-down"));
    w.keep(out, "print-quality-default", || IppValue::Enum(4));
    w.keep(out, "print-quality-supported", || IppValue::Enum(4));
    w.keep(out, "printer-resolution-default", resolution);
    w.keep(out, "printer-resolution-supported", resolution);
    w.keep(out, "sides-default", || keyword("one-sided"));
    w.keep(out, "sides-supported", || keyword("one-sided"));
    w.keep(out, "pages-per-minute", || integer(1));
}
