//! The IPP operations, each translated into calls on the same queue the
//! frame protocol uses, and the queue's answers back into IPP.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use backroom_api::print::{Job, JobState, ListArgs, Printers, SubmitArgs};
use backroom_frame::auth::{Identity, Role};
use backroom_frame::error::{Error, ErrorCode};
use ipp::attribute::{IppAttribute, IppAttributeGroup, IppAttributes};
use ipp::model::{DelimiterTag, Operation, StatusCode};
use ipp::value::IppValue;

use super::Face;
use super::attrs::{
    self, CLASSES_PATH, COPIES, DEFAULT_PATH, DESCRIBED_BY_DOCUMENT, Destination, FORMATS,
    INDEFINITE, JOB_HOLD_UNTIL, JOB_PRIORITY, JOBS_PATH, KNOWN_OPERATION_ATTRIBUTES, NO_HOLD,
    PRINTERS_PATH, Site, Wanted,
};
use super::message::{Answer, Document};
use crate::queue::Queue;
use crate::service::{PrintService, Upload};

/// An answer, or the refusal that ends the request.
type Outcome = Result<Answer, Answer>;

/// A request's head, with what the HTTP layer learnt.
pub struct Request {
    pub operation: i16,
    pub attributes: IppAttributes,
    pub site: Site,
    /// The authenticated user, or `None` on a server without users, where
    /// `requesting-user-name` is trusted.
    pub authenticated: Option<Identity>,
}

/// What an operation is aimed at, from its URI.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// The server itself: `/`.
    Server,
    /// A printer or class by name, or `None` for the default printer.
    Printer(Option<String>),
    Job(u64),
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Answer {
    Answer::refuse(status, message)
}

/// The IPP status for an engine error.
fn refusal(e: Error) -> Answer {
    let status = match e.code {
        ErrorCode::BadRequest => StatusCode::ClientErrorBadRequest,
        ErrorCode::Unauthorized => StatusCode::ClientErrorNotAuthenticated,
        ErrorCode::Forbidden => StatusCode::ClientErrorNotAuthorized,
        ErrorCode::NotFound => StatusCode::ClientErrorNotFound,
        ErrorCode::Conflict => StatusCode::ClientErrorNotPossible,
        // The `ipp` crate names 0x0408, client-error-request-entity-too-large,
        // "RequestEntityTooLong".
        ErrorCode::TooLarge => StatusCode::ClientErrorRequestEntityTooLong,
        ErrorCode::Busy => StatusCode::ServerErrorBusy,
        ErrorCode::Timeout => StatusCode::ClientErrorTimeout,
        ErrorCode::Unavailable | ErrorCode::Cancelled => StatusCode::ServerErrorServiceUnavailable,
        _ => StatusCode::ServerErrorInternalError,
    };
    refuse(status, e.message)
}

/// A job-creating operation refused because the printer takes no jobs gets
/// the status that says so.
fn creation_refusal(e: Error) -> Answer {
    if e.code == ErrorCode::Conflict {
        return refuse(StatusCode::ServerErrorNotAcceptingJobs, e.message);
    }
    refusal(e)
}

fn bad(message: impl Into<String>) -> Answer {
    refuse(StatusCode::ClientErrorBadRequest, message)
}

/// Answers one request whose head has been read; `document` is the rest of
/// the body, for the operations that carry one.
pub async fn answer(face: &Arc<Face>, request: Request, mut document: Document) -> Answer {
    let answer = run(face, &request, &mut document).await;
    document.drain().await;
    answer.unwrap_or_else(|a| a)
}

async fn run(face: &Arc<Face>, request: &Request, document: &mut Document) -> Outcome {
    request.check_operation_group()?;
    let supported = attrs::OPERATIONS
        .iter()
        .find(|op| **op as i16 == request.operation);
    let Some(&operation) = supported else {
        return Err(refuse(
            StatusCode::ServerErrorOperationNotSupported,
            format!("operation 0x{:04x} is not supported", request.operation),
        ));
    };
    let ops = Ops { face, request };
    let answer = match operation {
        Operation::PrintJob => ops.print_job(document).await?,
        Operation::ValidateJob => ops.validate_job().await?,
        Operation::CreateJob => ops.create_job().await?,
        Operation::SendDocument => ops.send_document(document).await?,
        Operation::CancelJob => ops.job_change(Queue::cancel).await?,
        Operation::HoldJob => ops.job_change(Queue::hold).await?,
        Operation::ReleaseJob => ops.job_change(Queue::release).await?,
        Operation::RestartJob => ops.job_change(Queue::restart).await?,
        Operation::GetJobAttributes => ops.get_job_attributes().await?,
        Operation::GetJobs => ops.get_jobs().await?,
        Operation::SetJobAttributes => ops.set_job_attributes().await?,
        Operation::GetPrinterAttributes => ops.get_printer_attributes().await?,
        Operation::PausePrinter => ops.pause(true).await?,
        Operation::ResumePrinter => ops.pause(false).await?,
        Operation::CupsGetDefault => ops.cups_get_default().await?,
        Operation::CupsGetPrinters => ops.cups_list(false).await?,
        Operation::CupsGetClasses => ops.cups_list(true).await?,
        other => {
            return Err(refuse(
                StatusCode::ServerErrorOperationNotSupported,
                format!("{other:?} is not supported"),
            ));
        }
    };
    Ok(answer.ignoring(request.unknown_operation_attributes()))
}

impl Request {
    fn operation_group(&self) -> Option<&IppAttributeGroup> {
        self.attributes
            .groups()
            .first()
            .filter(|g| g.tag() == DelimiterTag::OperationAttributes)
    }

    /// RFC 8011 section 4.1.4: the charset and the language come first, in
    /// that order.
    fn check_operation_group(&self) -> Result<(), Answer> {
        let names: Vec<&str> = self
            .operation_group()
            .map(|g| {
                g.attributes()
                    .iter()
                    .take(2)
                    .map(|a| a.name().as_str())
                    .collect()
            })
            .unwrap_or_default();
        if names != ["attributes-charset", "attributes-natural-language"] {
            return Err(bad(
                "the operation attributes must start with attributes-charset and \
                 attributes-natural-language",
            ));
        }
        match self.operation("attributes-charset") {
            Some(IppValue::Charset(c))
                if c.as_str().eq_ignore_ascii_case("utf-8")
                    || c.as_str().eq_ignore_ascii_case("us-ascii") =>
            {
                Ok(())
            }
            Some(IppValue::Charset(c)) => Err(refuse(
                StatusCode::ClientErrorCharsetNotSupported,
                format!("charset {} is not supported; use utf-8", c.as_str()),
            )),
            _ => Err(bad("attributes-charset must be a charset")),
        }
    }

    fn operation(&self, name: &str) -> Option<&IppValue> {
        self.operation_group()?.get(name).map(IppAttribute::value)
    }

    /// A job template attribute: in the job group, or, as some clients send
    /// it, among the operation attributes.
    fn template(&self, name: &str) -> Option<&IppValue> {
        self.attributes
            .groups_of(DelimiterTag::JobAttributes)
            .find_map(|g| g.get(name))
            .map(IppAttribute::value)
            .or_else(|| self.operation(name))
    }

    fn unknown_operation_attributes(&self) -> Vec<IppAttribute> {
        let known = |a: &&IppAttribute| {
            KNOWN_OPERATION_ATTRIBUTES.contains(&a.name().as_str())
                || [JOB_PRIORITY, JOB_HOLD_UNTIL, COPIES].contains(&a.name().as_str())
        };
        self.operation_group()
            .map(|g| {
                g.attributes()
                    .iter()
                    .filter(|a| !known(a))
                    .map(|a| {
                        IppAttribute::new(
                            a.name().clone(),
                            IppValue::Other {
                                tag: 0x10,
                                data: Default::default(),
                            },
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Job attributes the face neither keeps nor leaves to the document:
    /// reported, not used.
    fn unsupported_template(&self) -> Vec<IppAttribute> {
        self.attributes
            .groups_of(DelimiterTag::JobAttributes)
            .flat_map(|g| g.attributes())
            .filter(|a| {
                let name = a.name().as_str();
                ![JOB_PRIORITY, JOB_HOLD_UNTIL, COPIES].contains(&name)
                    && !DESCRIBED_BY_DOCUMENT.contains(&name)
            })
            .cloned()
            .collect()
    }

    fn text(&self, name: &str) -> Result<Option<String>, Answer> {
        match self.operation(name) {
            None => Ok(None),
            Some(v) => string(v)
                .map(|s| Some(s.to_owned()))
                .ok_or_else(|| bad(format!("{name} must be a name or text"))),
        }
    }

    /// Who is asking: the authenticated user, or, on a server without users,
    /// the `requesting-user-name` with read-write rights (an admin when it
    /// names nobody, as every caller is on the frame protocol then).
    fn who(&self) -> Result<Identity, Answer> {
        if let Some(who) = &self.authenticated {
            return Ok(who.clone());
        }
        Ok(match self.text("requesting-user-name")? {
            Some(user) if !user.is_empty() => Identity {
                user,
                role: Role::ReadWrite,
            },
            _ => Identity {
                user: "anonymous".into(),
                role: Role::Admin,
            },
        })
    }

    fn target(&self) -> Result<Target, Answer> {
        let uri = match (self.operation("job-uri"), self.operation("printer-uri")) {
            (Some(v), _) | (None, Some(v)) => match v {
                IppValue::Uri(u) => u.as_str().to_owned(),
                _ => return Err(bad("printer-uri and job-uri must be URIs")),
            },
            (None, None) => return Err(bad("the request names no printer-uri or job-uri")),
        };
        let path = uri
            .parse::<http::Uri>()
            .map_err(|_| bad(format!("{uri} is not a URI")))?
            .path()
            .to_owned();
        let target = parse_path(&path).ok_or_else(|| {
            refuse(
                StatusCode::ClientErrorNotFound,
                format!("nothing at {path}"),
            )
        })?;
        if let Target::Job(_) = target {
            return Ok(target);
        }
        match self.operation("job-id") {
            None => Ok(target),
            Some(IppValue::Integer(id)) if *id > 0 => Ok(Target::Job(*id as u64)),
            Some(_) => Err(bad("job-id must be a positive integer")),
        }
    }

    fn job_id(&self) -> Result<u64, Answer> {
        match self.target()? {
            Target::Job(id) => Ok(id),
            _ => Err(bad(
                "this operation needs a job-uri, or a printer-uri and a job-id",
            )),
        }
    }

    fn wanted(&self, default: &[&str]) -> Wanted {
        Wanted::from(self.operation("requested-attributes"), default)
    }
}

fn string(value: &IppValue) -> Option<&str> {
    match value {
        IppValue::NameWithoutLanguage(s) => Some(s.as_str()),
        IppValue::NameWithLanguage { name, .. } => Some(name.as_str()),
        IppValue::TextWithoutLanguage(t) | IppValue::TextWithLanguage { text: t, .. } => {
            Some(t.as_ref())
        }
        _ => None,
    }
}

fn parse_path(path: &str) -> Option<Target> {
    let path = path.trim_end_matches('/');
    if path.is_empty() || path == "/jobs" || path == "/printers" || path == "/classes" {
        return Some(Target::Server);
    }
    if path == DEFAULT_PATH {
        return Some(Target::Printer(None));
    }
    if let Some(id) = path.strip_prefix(JOBS_PATH) {
        return id.parse().ok().map(Target::Job);
    }
    [PRINTERS_PATH, CLASSES_PATH]
        .iter()
        .find_map(|prefix| path.strip_prefix(prefix))
        .filter(|name| !name.is_empty() && !name.contains('/'))
        .map(|name| Target::Printer(Some(name.to_owned())))
}

struct Ops<'a> {
    face: &'a Arc<Face>,
    request: &'a Request,
}

type JobChange =
    fn(&mut Queue, u64, &Identity, i64, &mut Vec<backroom_api::print::Event>) -> Result<Job, Error>;

impl Ops<'_> {
    async fn printers(&self) -> Result<Printers, Answer> {
        self.face
            .shared
            .with_queue(|q, _, _| Ok(q.printers()))
            .await
            .map_err(refusal)
    }

    /// The printer or class a printer operation names, resolved to a name.
    fn destination(&self) -> Result<String, Answer> {
        let printers = &self.face.layout;
        let name = match self.request.target()? {
            Target::Printer(Some(name)) => name,
            Target::Printer(None) => printers.default_printer.clone().ok_or_else(|| {
                refuse(
                    StatusCode::ClientErrorNotFound,
                    "there is no default printer",
                )
            })?,
            Target::Server | Target::Job(_) => {
                return Err(bad(
                    "this operation needs a printer-uri that names a printer",
                ));
            }
        };
        if Destination::find(printers, &name).is_none() {
            return Err(refuse(
                StatusCode::ClientErrorNotFound,
                format!("no printer or class named {name}"),
            ));
        }
        Ok(name)
    }

    /// The job a creating operation describes, checked against what the
    /// face supports; unsupported job attributes come back beside it.
    async fn submit_args(&self) -> Result<(SubmitArgs, Identity, Vec<IppAttribute>), Answer> {
        let request = self.request;
        let who = request.who()?;
        let printer = self.destination()?;
        let name = request
            .text("job-name")?
            .or(request.text("document-name")?)
            .unwrap_or_else(|| "untitled".to_owned());
        let mut args = SubmitArgs::new(name);
        args.printer = Some(printer);
        let mut unsupported = request.unsupported_template();
        let mut refused = Vec::new();
        match request.template(JOB_PRIORITY) {
            None => {}
            Some(IppValue::Integer(p)) => match u8::try_from(*p) {
                Ok(p @ 1..=100) => args.priority = Some(p),
                _ => refused.push(attrs_value(JOB_PRIORITY, IppValue::Integer(*p))),
            },
            Some(_) => return Err(bad("job-priority must be an integer")),
        }
        match request.template(COPIES) {
            None => {}
            Some(IppValue::Integer(n)) if (1..=100).contains(n) => args.copies = *n as u32,
            Some(IppValue::Integer(n)) => refused.push(attrs_value(COPIES, IppValue::Integer(*n))),
            Some(_) => return Err(bad("copies must be an integer")),
        }
        if let Some(hold) = request.template(JOB_HOLD_UNTIL) {
            match hold_until(hold)? {
                Some(hold) => args.hold = hold,
                None => refused.push(attrs_value(JOB_HOLD_UNTIL, hold.clone())),
            }
        }
        match request.operation("document-format") {
            None => {}
            Some(IppValue::MimeMediaType(f)) => {
                let base = f.as_str().split(';').next().unwrap_or("").trim();
                if !FORMATS.iter().any(|known| known.eq_ignore_ascii_case(base)) {
                    return Err(refuse(
                        StatusCode::ClientErrorDocumentFormatNotSupported,
                        format!("document-format {} is not supported", f.as_str()),
                    )
                    .ignoring(vec![attrs_value(
                        "document-format",
                        IppValue::MimeMediaType(f.clone()),
                    )]));
                }
            }
            Some(_) => return Err(bad("document-format must be a mimeMediaType")),
        }
        match request.operation("compression") {
            None => {}
            Some(IppValue::Keyword(k)) if k.as_str() == "none" => {}
            Some(IppValue::Keyword(k)) => {
                return Err(refuse(
                    StatusCode::ClientErrorCompressionNotSupported,
                    format!("compression {} is not supported", k.as_str()),
                ));
            }
            Some(_) => return Err(bad("compression must be a keyword")),
        }
        let fidelity = matches!(
            request.operation("ipp-attribute-fidelity"),
            Some(IppValue::Boolean(true))
        );
        if !refused.is_empty() || (fidelity && !unsupported.is_empty()) {
            unsupported.extend(refused);
            return Err(refuse(
                StatusCode::ClientErrorAttributesOrValuesNotSupported,
                "some job attributes or values are not supported",
            )
            .ignoring(unsupported));
        }
        Ok((args, who, unsupported))
    }

    fn job_answer(&self, job: &Job) -> Answer {
        let wanted = Wanted::from(
            None,
            &[
                "job-id",
                "job-uri",
                "job-state",
                "job-state-reasons",
                "job-state-message",
            ],
        );
        Answer::ok().group(
            DelimiterTag::JobAttributes,
            attrs::job(job, &self.request.site, &self.face.layout, &wanted),
        )
    }

    async fn print_job(&self, document: &mut Document) -> Outcome {
        let (mut args, who, unsupported) = self.submit_args().await?;
        let limit = self.face.config.max_document_bytes;
        if let Some(size) = document.declared() {
            if size > limit {
                return Err(refusal(Error::new(
                    ErrorCode::TooLarge,
                    format!("the document has {size} bytes, more than the limit of {limit}"),
                )));
            }
            args.size = Some(size);
        }
        let service = PrintService {
            shared: self.face.shared.clone(),
        };
        let job = service
            .submit(args, who, document)
            .await
            .map_err(creation_refusal)?;
        Ok(self.job_answer(&job).ignoring(unsupported))
    }

    /// A job without its document: queued held, with an empty document,
    /// until Send-Document brings one.
    async fn create_job(&self) -> Outcome {
        let (mut args, who, unsupported) = self.submit_args().await?;
        let hold = std::mem::replace(&mut args.hold, true);
        let service = PrintService {
            shared: self.face.shared.clone(),
        };
        let job = service
            .submit(args, who, Empty)
            .await
            .map_err(creation_refusal)?;
        self.face.incoming().insert(job.id, hold);
        Ok(self.job_answer(&job).ignoring(unsupported))
    }

    async fn send_document(&self, document: &mut Document) -> Outcome {
        let request = self.request;
        let id = request.job_id()?;
        let who = request.who()?;
        match request.operation("last-document") {
            Some(IppValue::Boolean(true)) => {}
            Some(IppValue::Boolean(false)) => {
                return Err(refuse(
                    StatusCode::ServerErrorMultipleDocumentJobsNotSupported,
                    "a job holds one document: send it with last-document true",
                ));
            }
            _ => return Err(bad("Send-Document needs last-document, a boolean")),
        }
        let Some(hold) = self.face.incoming().remove(&id) else {
            return Err(refuse(
                StatusCode::ClientErrorNotPossible,
                format!("job {id} was not made by Create-Job or has its document already"),
            ));
        };
        let service = PrintService {
            shared: self.face.shared.clone(),
        };
        let job = match service.attach(id, hold, who, document).await {
            Ok(job) => job,
            Err(e) => {
                // The job still waits for its document: the client may try
                // again.
                self.face.incoming().insert(id, hold);
                return Err(refusal(e));
            }
        };
        Ok(self.job_answer(&job))
    }

    async fn validate_job(&self) -> Outcome {
        let (args, who, unsupported) = self.submit_args().await?;
        who.require(Role::ReadWrite).map_err(refusal)?;
        let shared = self.face.shared.clone();
        let used = shared.spool_used.load(Ordering::Acquire);
        shared
            .with_queue(move |q, _, _| q.validate(&args, used))
            .await
            .map_err(creation_refusal)?;
        Ok(Answer::ok().ignoring(unsupported))
    }

    async fn job_change(&self, change: JobChange) -> Outcome {
        let id = self.request.job_id()?;
        let who = self.request.who()?;
        self.face
            .shared
            .with_queue(move |q, now, ev| change(q, id, &who, now, ev))
            .await
            .map_err(refusal)?;
        Ok(Answer::ok())
    }

    async fn get_job_attributes(&self) -> Outcome {
        let id = self.request.job_id()?;
        let job = self
            .face
            .shared
            .with_queue(move |q, now, _| q.job(id, now))
            .await
            .map_err(refusal)?;
        let wanted = self.request.wanted(&["all"]);
        Ok(Answer::ok().group(
            DelimiterTag::JobAttributes,
            attrs::job(&job, &self.request.site, &self.face.layout, &wanted),
        ))
    }

    async fn get_jobs(&self) -> Outcome {
        let request = self.request;
        let printer = match request.target()? {
            Target::Server => None,
            Target::Job(_) => return Err(bad("Get-Jobs takes a printer-uri")),
            Target::Printer(_) => Some(self.destination()?),
        };
        let owner = match request.operation("my-jobs") {
            None | Some(IppValue::Boolean(false)) => None,
            Some(IppValue::Boolean(true)) => Some(request.who()?.user),
            Some(_) => return Err(bad("my-jobs must be a boolean")),
        };
        let limit = match request.operation("limit") {
            None => u32::MAX,
            Some(IppValue::Integer(n)) if *n > 0 => *n as u32,
            Some(_) => return Err(bad("limit must be a positive integer")),
        };
        let which = match request.operation("which-jobs") {
            None => "not-completed".to_owned(),
            Some(IppValue::Keyword(k)) => k.as_str().to_owned(),
            Some(_) => return Err(bad("which-jobs must be a keyword")),
        };
        let states: &[Option<JobState>] = match which.as_str() {
            "not-completed" => &[None],
            "completed" => &[
                Some(JobState::Completed),
                Some(JobState::Cancelled),
                Some(JobState::Aborted),
            ],
            "all" => &[
                None,
                Some(JobState::Completed),
                Some(JobState::Cancelled),
                Some(JobState::Aborted),
            ],
            other => {
                return Err(refuse(
                    StatusCode::ClientErrorAttributesOrValuesNotSupported,
                    format!("which-jobs {other} is not supported"),
                ));
            }
        };
        let lists: Vec<ListArgs> = states
            .iter()
            .map(|state| ListArgs {
                state: *state,
                owner: owner.clone(),
                printer: printer.clone(),
                limit,
                ..ListArgs::default()
            })
            .collect();
        let jobs = self
            .face
            .shared
            .with_queue(move |q, now, _| Ok(merged(q, &lists, now)))
            .await
            .map_err(refusal)?;
        let wanted = request.wanted(&["job-id", "job-uri"]);
        let mut answer = Answer::ok();
        for job in &jobs {
            answer = answer.group(
                DelimiterTag::JobAttributes,
                attrs::job(job, &request.site, &self.face.layout, &wanted),
            );
        }
        Ok(answer)
    }

    /// RFC 3380: `job-priority` and `job-hold-until` of a waiting job. Every
    /// value is checked before any is applied.
    async fn set_job_attributes(&self) -> Outcome {
        let request = self.request;
        let id = request.job_id()?;
        let who = request.who()?;
        let unsupported = request.unsupported_template();
        if !unsupported.is_empty() {
            return Err(refuse(
                StatusCode::ClientErrorAttributesOrValuesNotSupported,
                "only job-priority and job-hold-until can be set",
            )
            .ignoring(unsupported));
        }
        let priority = match request.template(JOB_PRIORITY) {
            None => None,
            Some(IppValue::Integer(p)) => match u8::try_from(*p) {
                Ok(p @ 1..=100) => Some(p),
                _ => {
                    return Err(refuse(
                        StatusCode::ClientErrorAttributesOrValuesNotSupported,
                        "job-priority must be 1 to 100",
                    )
                    .ignoring(vec![attrs_value(JOB_PRIORITY, IppValue::Integer(*p))]));
                }
            },
            Some(_) => return Err(bad("job-priority must be an integer")),
        };
        let hold = match request.template(JOB_HOLD_UNTIL) {
            None => None,
            Some(v) => match hold_until(v)? {
                Some(hold) => Some(hold),
                None => {
                    return Err(refuse(
                        StatusCode::ClientErrorAttributesOrValuesNotSupported,
                        "job-hold-until must be no-hold or indefinite",
                    )
                    .ignoring(vec![attrs_value(JOB_HOLD_UNTIL, v.clone())]));
                }
            },
        };
        if priority.is_none() && hold.is_none() {
            return Err(bad("nothing to set: give job-priority or job-hold-until"));
        }
        self.face
            .shared
            .with_queue(move |q, now, ev| {
                let mut job = q.job(id, now)?;
                if let Some(priority) = priority {
                    job = q.set_priority(id, priority, &who, now, ev)?;
                }
                match hold {
                    Some(true) if job.state != JobState::Held => q.hold(id, &who, now, ev),
                    Some(false) if job.state == JobState::Held => q.release(id, &who, now, ev),
                    _ => Ok(job),
                }
            })
            .await
            .map_err(refusal)?;
        Ok(Answer::ok())
    }

    async fn get_printer_attributes(&self) -> Outcome {
        let name = self.destination()?;
        let printers = self.printers().await?;
        self.printer_answer(&printers, &name)
    }

    fn printer_answer(&self, printers: &Printers, name: &str) -> Outcome {
        let dest = Destination::find(printers, name).ok_or_else(|| {
            refuse(
                StatusCode::ClientErrorNotFound,
                format!("no printer named {name}"),
            )
        })?;
        let wanted = self.request.wanted(&["all"]);
        Ok(Answer::ok().group(
            DelimiterTag::PrinterAttributes,
            attrs::printer(&dest, &self.request.site, printers, &wanted),
        ))
    }

    async fn pause(&self, pause: bool) -> Outcome {
        let who = self.request.who()?;
        who.require(Role::Admin).map_err(refusal)?;
        let name = self.destination()?;
        self.face
            .shared
            .with_queue(move |q, _, ev| {
                q.set_flags(
                    &name,
                    |flags| {
                        flags.paused = pause;
                        if !pause {
                            flags.stopped = false;
                        }
                    },
                    ev,
                )
            })
            .await
            .map_err(refusal)?;
        Ok(Answer::ok())
    }

    async fn cups_get_default(&self) -> Outcome {
        let printers = self.printers().await?;
        let name = printers.default_printer.clone().ok_or_else(|| {
            refuse(
                StatusCode::ClientErrorNotFound,
                "there is no default printer",
            )
        })?;
        self.printer_answer(&printers, &name)
    }

    async fn cups_list(&self, classes: bool) -> Outcome {
        let printers = self.printers().await?;
        let names: Vec<&str> = if classes {
            printers.classes.iter().map(|c| c.name.as_str()).collect()
        } else {
            printers.printers.iter().map(|p| p.name.as_str()).collect()
        };
        let wanted = self.request.wanted(&["all"]);
        let mut answer = Answer::ok();
        for name in names {
            if let Some(dest) = Destination::find(&printers, name) {
                answer = answer.group(
                    DelimiterTag::PrinterAttributes,
                    attrs::printer(&dest, &self.request.site, &printers, &wanted),
                );
            }
        }
        Ok(answer)
    }
}

/// The jobs of several lists, the unfinished first, then the finished newest
/// first, at most as many as the first list's limit allows.
fn merged(q: &Queue, lists: &[ListArgs], now: i64) -> Vec<Job> {
    let limit = lists.first().map_or(0, |l| l.limit) as usize;
    let mut unfinished = Vec::new();
    let mut finished = Vec::new();
    for args in lists {
        for job in q.list(args, now).jobs {
            if job.state.is_finished() {
                finished.push(job);
            } else {
                unfinished.push(job);
            }
        }
    }
    finished.sort_by_key(|j| std::cmp::Reverse(j.id));
    unfinished.into_iter().chain(finished).take(limit).collect()
}

/// `job-hold-until`: `Some(true)` to hold, `Some(false)` not to, `None` for
/// a value the engine cannot honour (a time of day).
fn hold_until(value: &IppValue) -> Result<Option<bool>, Answer> {
    let keyword = match value {
        IppValue::Keyword(k) => k.as_str(),
        IppValue::NameWithoutLanguage(n) => n.as_str(),
        _ => return Err(bad("job-hold-until must be a keyword")),
    };
    Ok(match keyword {
        NO_HOLD => Some(false),
        INDEFINITE => Some(true),
        _ => None,
    })
}

fn attrs_value(name: &str, value: IppValue) -> IppAttribute {
    super::message::attr(name, value)
}

/// The document of a job made by Create-Job, until Send-Document.
struct Empty;

impl Upload for Empty {
    async fn chunk(&mut self) -> Result<Option<bytes::Bytes>, Error> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_as_cups_has_them() {
        let printer = |name: &str| Some(Target::Printer(Some(name.to_owned())));
        assert_eq!(parse_path("/printers/office"), printer("office"));
        assert_eq!(parse_path("/classes/floor1/"), printer("floor1"));
        assert_eq!(parse_path("/ipp/print"), Some(Target::Printer(None)));
        assert_eq!(parse_path("/jobs/42"), Some(Target::Job(42)));
        assert_eq!(parse_path("/"), Some(Target::Server));
        assert_eq!(parse_path("/jobs"), Some(Target::Server));
        assert_eq!(parse_path("/jobs/x"), None);
        assert_eq!(parse_path("/printers/a/b"), None);
        assert_eq!(parse_path("/admin"), None);
    }

    #[test]
    fn only_no_hold_and_indefinite_are_honoured() {
        let keyword = |k: &str| IppValue::new_keyword(k).expect("keyword");
        assert_eq!(hold_until(&keyword("indefinite")).ok(), Some(Some(true)));
        assert_eq!(hold_until(&keyword("no-hold")).ok(), Some(Some(false)));
        assert_eq!(hold_until(&keyword("night")).ok(), Some(None));
        assert!(hold_until(&IppValue::Integer(1)).is_err());
    }
}
