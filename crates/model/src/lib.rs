//! Domain types of techpack: the tech files, their versions, collections and the principal that
//! acts on them, with the validation rules every backend relies on. No I/O lives here.

mod collection;
mod error_kind;
mod file;
mod ids;
mod job;
mod kinds;
mod principal;
mod progress;
mod report;
mod validation;

pub use collection::{
    Collection, CollectionItem, CollectionItemInput, CollectionProgress, CollectionWithFiles,
    NewCollection,
};
pub use error_kind::{ClassifiedError, ErrorKind, io_error_kind};
pub use file::{
    FileChanges, FileCursor, FileFilter, FilePage, NewTechFile, TechFile, TechFileVersion,
};
pub use ids::{LOCAL_USER_ID, product_id_from_name, revision_id_from_name};
pub use job::{
    ClaimOptions, DEFAULT_MAX_ATTEMPTS, FailedStep, Job, JobFilter, JobLease, JobOutcome,
    JobProgress, JobResult, JobState, JobStepCounts, MAX_FAILED_STEPS_LISTED, MAX_JOB_ATTEMPTS,
    MAX_JOB_DELAY, MAX_JOB_KEY_BYTES, MAX_JOB_KIND_CHARS, MAX_JOB_LEASE, NewJob,
    TECH_PACK_JOB_KIND, check_lease, clip_job_error,
};
pub use kinds::{
    CollectionStatus, CollectionType, FileStatus, FileType, ProductCategory, UnknownVariant,
};
pub use principal::Principal;
pub use progress::{JobEvent, ProgressCounts, ProgressEvent, StepId, StepKind, StepOrigin};
pub use report::{
    CollectionCompletionRow, MonitoringReport, ProductCreditsRow, ProductStats, RecentFilesRow,
};
pub use validation::{MAX_JSON_BYTES, MAX_PAGE_SIZE, MAX_TEXT_BYTES, ValidationError};
