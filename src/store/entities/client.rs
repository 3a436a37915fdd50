//! A registered OAuth client.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "client")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub client_id: String,
    /// base64url SHA-256 of the secret; `None` for public clients.
    pub secret_hash: Option<String>,
    pub name: String,
    /// JSON array of redirect URIs, compared exactly.
    pub redirect_uris: String,
    /// Space-separated grant types.
    pub grant_types: String,
    /// Space-separated scopes the client may request.
    pub scope: String,
    /// `web` or `native` (RFC 8252 loopback redirects).
    pub application_type: String,
    /// First-party clients skip the consent page.
    pub first_party: bool,
    /// `id_token_signed_response_alg`: `RS256` unless the client chose `ES256`.
    pub id_token_alg: String,
    pub created_at: DateTimeUtc,
    /// JSON array of URIs an RP-initiated logout may return to, compared exactly.
    pub post_logout_redirect_uris: String,
    /// A user in no organization gets a token without org claims instead of
    /// `access_denied` when this client asks for `org`.
    pub org_optional: bool,
    pub client_uri: Option<String>,
    pub logo_uri: Option<String>,
    /// JSON array of email addresses.
    pub contacts: String,
    /// `client_secret_basic`, `client_secret_post` or `none`.
    pub token_endpoint_auth_method: String,
    /// Digest of the RFC 7592 registration access token; `None` for clients an
    /// operator created.
    pub registration_token_hash: Option<String>,
    /// Registered through dynamic registration rather than by an operator.
    pub self_registered: bool,
    /// The API (RFC 8707 resource) its tokens are for when a request names none.
    pub default_resource: Option<String>,
    /// The API (audience) whose tokens this client, that API's server, may
    /// introspect besides its own.
    pub introspect_for: Option<String>,
    /// A service account acts for this organization…
    pub service_org_id: Option<Uuid>,
    /// …with this role (`owner`, `admin`, `member`).
    pub service_role: Option<String>,
    /// After a secret rotation, the old secret's digest, valid until
    /// `previous_secret_until`.
    pub previous_secret_hash: Option<String>,
    pub previous_secret_until: Option<DateTimeUtc>,
    /// OIDC Back-Channel Logout: where logout tokens are POSTed.
    pub backchannel_logout_uri: Option<String>,
    /// The client requires `sid` in logout tokens (we always send it).
    pub backchannel_logout_session_required: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
