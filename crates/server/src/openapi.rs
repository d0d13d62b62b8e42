//! The OpenAPI 3.1 document, generated from the handlers and types themselves, served at
//! `/openapi.json` with the Swagger UI at `/docs` (its assets are inside the binary).

use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::routes::{blobs, collections, files, health, jobs, packs, reports};

/// The API's document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "techpack",
        description = "Tech packs from product photos: base-view analyses, close-ups, technical sketches and complete packs, with versions, collections, credits and per-user isolation.\n\nAuthenticate with a Supabase access token: `Authorization: Bearer <JWT>`. Errors are `{\"error\": {\"code\", \"message\", \"request_id\"}}`."
    ),
    paths(
        packs::create_pack, packs::list_packs, packs::get_pack, packs::retry_failed,
        jobs::list_jobs, jobs::get_job, jobs::cancel_job, jobs::job_events,
        files::list_files, files::create_file, files::upload_file, files::get_file, files::file_versions, files::create_version,
        files::restore_file, files::archive_file, files::set_file_status, files::content,
        files::content_url,
        collections::list_collections, collections::create_collection,
        collections::get_collection, collections::add_files, collections::remove_files,
        collections::set_progress, collections::recount_credits,
        reports::product_stats, reports::batch_files, reports::report,
        blobs::download,
        health::healthz, health::readyz, health::metrics,
    ),
    components(schemas(jobs::JobEventData, techpack_model::JobEvent)),
    modifiers(&BearerAuth),
    tags(
        (name = "packs", description = "Tech packs: ask for one, read it, retry its failed steps"),
        (name = "jobs", description = "Durable generation jobs and their live events"),
        (name = "files", description = "Tech files, their versions and content"),
        (name = "collections", description = "Collections of files"),
        (name = "reports", description = "Statistics and monitoring"),
        (name = "operations", description = "Health and metrics"),
    )
)]
pub struct ApiDoc;

/// Declares the bearer-token scheme the routes name.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A Supabase access token (HS256 with the project's JWT secret, or RS256/ES256 from its JWKS). `role: service_role` tokens act for every user.",
                    ))
                    .build(),
            ),
        );
    }
}
