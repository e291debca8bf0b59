//! `GET /openapi.json`: the API's OpenAPI 3.1 document, generated from
//! the handlers' `#[utoipa::path]` attributes and the types' `ToSchema`
//! derives (the engine's own types derive it under the `server` feature),
//! so it cannot drift from the code. Served without authentication.
//!
//! Three engine types serialize by hand and get their schemas by hand
//! here: ids (UUID strings), blob ids (64 hex digits) and typed values
//! (a JSON number, string, boolean or list).

use std::sync::OnceLock;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::schema::{
    ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, Type,
};
use utoipa::openapi::RefOr;
use utoipa::{OpenApi, PartialSchema, ToSchema};

use super::{experiments, export, files, follow, models};
use crate::id::BlobId;
use crate::meta::registry_records::EntityId;
use crate::query::Value;

impl PartialSchema for EntityId {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::Custom("uuid".to_owned())))
            .description(Some("an id (UUID v7)"))
            .into()
    }
}
impl ToSchema for EntityId {}

impl PartialSchema for BlobId {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[0-9a-f]{64}$"))
            .description(Some(
                "a blob id: the BLAKE3 hash of the content, 64 hex digits",
            ))
            .into()
    }
}
impl ToSchema for BlobId {}

impl PartialSchema for Value {
    fn schema() -> RefOr<Schema> {
        let scalar = OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::Integer))
            .item(ObjectBuilder::new().schema_type(Type::Number))
            .item(ObjectBuilder::new().schema_type(Type::Boolean))
            .item(ObjectBuilder::new().schema_type(Type::String))
            .item(ArrayBuilder::new().items(ObjectBuilder::new()))
            .description(Some(
                "a typed value: a number, string, boolean or list of them",
            ));
        scalar.into()
    }
}
impl ToSchema for Value {}

#[derive(OpenApi)]
#[openapi(
    info(title = "modelvault registry API", description = "Experiments, models, versions, blobs and artifacts of a modelvault store, and bundles of them, beside its S3 endpoint. With credentials configured, every route but this document needs HTTP Basic auth: user = access key, password = secret key."),
    paths(
        experiments::create, experiments::list, experiments::by_name, experiments::show,
        experiments::start, experiments::finish, experiments::progress, experiments::set_progress,
        experiments::params, experiments::set_params, experiments::log, experiments::console,
        follow::follow, experiments::report_scalars, experiments::scalars, experiments::artifacts,
        files::put_artifact, files::get_artifact, experiments::use_model,
        models::create, models::create_external, models::list, models::show,
        models::set_metadata, models::remove_metadata, models::add_tags, models::remove_tag,
        models::set_labels, models::set_alias, models::remove_alias, models::finalize,
        models::versions, models::add_version, models::version, files::version_file,
        files::post_blob, files::get_blob, files::delete_blob, export::export,
    ),
    tags((name = "experiments"), (name = "models"), (name = "blobs"), (name = "bundles")),
)]
struct Doc;

/// The document, built once.
pub(crate) fn text() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = Doc::openapi();
        doc.openapi = utoipa::openapi::OpenApiVersion::Version31;
        doc.to_json().unwrap_or_else(|e| {
            tracing::error!(error = %e, "the OpenAPI document does not serialize");
            "{}".to_owned()
        })
    })
}

pub(super) async fn document() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        text(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_parses_and_lists_every_route() {
        let doc: serde_json::Value = serde_json::from_str(super::text()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().unwrap();
        for p in [
            "/_api/v1/experiments",
            "/_api/v1/experiments/{id}/console/follow",
            "/_api/v1/models/{model}/versions/{version}/files/{path}",
            "/_api/v1/blobs/{id}",
            "/_api/v1/export",
        ] {
            assert!(paths.contains_key(p), "{p} missing from {:?}", paths.keys());
        }
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for s in ["ExperimentInfo", "ModelInfo", "ModelVersion", "ErrorBody"] {
            assert!(schemas.contains_key(s), "{s} missing");
        }
    }
}
