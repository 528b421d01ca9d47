//! An HTTP error answer: the status the seed's routes use (400 bad request, 401, 403, 404 unknown
//! id, 409 conflict, 503), and a JSON body with the gRPC code, the message, the field at fault and
//! the hierarchy context the gRPC answer carried in its details.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Serialize;
use solarhub_proto::tonic::{Code, Status};
use tonic_types::StatusExt;

/// `{"error": {...}}`.
#[derive(Debug, Clone, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    /// The gRPC code's name (`NOT_FOUND`, `INVALID_ARGUMENT`, ...).
    pub code: String,
    pub message: String,
    /// The request field (or query parameter) at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<Violation>,
    /// What was not found (or already exists) and under which parents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<Box<Resource>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    pub field: String,
    pub description: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Resource {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub parents: String,
}

impl ApiError {
    /// A bad request naming `field`.
    pub fn bad_request(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        let field = field.into();
        let message = message.into();
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "INVALID_ARGUMENT".into(),
            violations: vec![Violation {
                field: field.clone(),
                description: message.clone(),
            }],
            message,
            field: Some(field),
            resource: None,
        }
    }

    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: code.to_owned(),
            message: message.into(),
            field: None,
            violations: Vec::new(),
            resource: None,
        }
    }

    pub fn unauthenticated(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "PERMISSION_DENIED", message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", message)
    }
}

/// The HTTP status of a gRPC code.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::FailedPrecondition | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Cancelled => StatusCode::REQUEST_TIMEOUT,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<Status> for ApiError {
    fn from(status: Status) -> ApiError {
        let details = status.get_error_details();
        let violations: Vec<Violation> = details
            .bad_request()
            .map(|bad| {
                bad.field_violations
                    .iter()
                    .map(|v| Violation {
                        field: v.field.clone(),
                        description: v.description.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let resource = details.resource_info().map(|info| {
            Box::new(Resource {
                kind: info.resource_type.clone(),
                id: info.resource_name.clone(),
                parents: info.owner.clone(),
            })
        });
        ApiError {
            status: http_status(status.code()),
            code: crate::audit::code_name(status.code()),
            message: status.message().to_owned(),
            field: violations.first().map(|v| v.field.clone()),
            violations,
            resource,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status;
        let mut response =
            (status, axum::Json(serde_json::json!({ "error": self }))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
