//! Management paths: which resource a path addresses, and which operation a method on it is.

use http::Method;
use percent_encoding::percent_decode_str;
use wsgate_core::config::Operation;

/// What a management path addresses; names and ids percent-decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `@connections/{id}`.
    Connection(String),
    /// `@connections`.
    Connections,
    /// `@broadcast`.
    Broadcast,
    /// `@groups/{group}`.
    Group(String),
    /// `@groups/{group}/connections/{id}`.
    GroupMember(String, String),
    /// `@users/{user}`.
    User(String),
    /// `@openapi.json`.
    OpenApi,
    /// `@cluster`.
    Cluster,
    /// `/metrics`.
    Metrics,
    /// `@console/overview`.
    Overview,
    /// A management path that names no operation.
    Unknown,
    /// A management path under another stage.
    WrongStage,
}

fn decoded(segment: &str) -> std::borrow::Cow<'_, str> {
    percent_decode_str(segment).decode_utf8_lossy()
}

const ROOTS: &[&str] = &[
    "@connections",
    "@broadcast",
    "@groups",
    "@users",
    "@openapi.json",
    "@cluster",
    "@console",
];

impl Target {
    /// Reads a raw (percent-encoded) path; `None` when it is not a management path. Every path
    /// works with and without the `/{stage}` prefix.
    pub fn parse(path: &str, stage: &str) -> Option<Self> {
        // `/metrics`, where scrapers look by default; like every management path, also under
        // the stage.
        let unstaged = path
            .strip_prefix('/')
            .and_then(|p| p.strip_prefix(stage))
            .unwrap_or(path);
        if path == "/metrics" || unstaged == "/metrics" {
            return Some(Self::Metrics);
        }
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let is_root = |s: &str| ROOTS.contains(&decoded(s).as_ref());
        let rest: &[&str] = match segments.as_slice() {
            [first, ..] if is_root(first) => &segments,
            [first, second, ..] if is_root(second) => {
                if decoded(first) != stage {
                    return Some(Self::WrongStage);
                }
                &segments[1..]
            }
            _ => return None,
        };
        let named = |s: &str| (!s.is_empty()).then(|| decoded(s).into_owned());
        let root = decoded(rest[0]);
        Some(match (root.as_ref(), &rest[1..]) {
            ("@connections", []) => Self::Connections,
            ("@connections", [id]) => named(id).map_or(Self::Unknown, Self::Connection),
            ("@broadcast", []) => Self::Broadcast,
            ("@groups", [group]) => named(group).map_or(Self::Unknown, Self::Group),
            ("@groups", [group, connections, id]) if *connections == "connections" => {
                match (named(group), named(id)) {
                    (Some(group), Some(id)) => Self::GroupMember(group, id),
                    _ => Self::Unknown,
                }
            }
            ("@users", [user]) => named(user).map_or(Self::Unknown, Self::User),
            ("@openapi.json", []) => Self::OpenApi,
            ("@cluster", []) => Self::Cluster,
            ("@console", ["overview"]) => Self::Overview,
            _ => Self::Unknown,
        })
    }

    /// The operation for a method on this target.
    pub(super) fn operation(&self, method: &Method) -> Option<Operation> {
        Some(match (self, method) {
            (Self::Connection(_), &Method::POST) => Operation::PostToConnection,
            (Self::Connection(_), &Method::GET) => Operation::GetConnection,
            (Self::Connection(_), &Method::DELETE) => Operation::DeleteConnection,
            (Self::Connections, &Method::POST) => Operation::PostToConnections,
            (Self::Connections, &Method::GET) => Operation::ListConnections,
            (Self::Broadcast, &Method::POST) => Operation::Broadcast,
            (Self::GroupMember(..), &Method::PUT) => Operation::JoinGroup,
            (Self::GroupMember(..), &Method::DELETE) => Operation::LeaveGroup,
            (Self::Group(_), &Method::POST) => Operation::PostToGroup,
            (Self::Group(_), &Method::GET) => Operation::ListGroup,
            (Self::User(_), &Method::POST) => Operation::PostToUser,
            (Self::User(_), &Method::DELETE) => Operation::DeleteUser,
            (Self::OpenApi, &Method::GET) => Operation::OpenApi,
            (Self::Cluster, &Method::GET) => Operation::Cluster,
            (Self::Metrics, &Method::GET) => Operation::Metrics,
            (Self::Overview, &Method::GET) => Operation::Console,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn management_paths_parse() {
        let id = || Some(Target::Connection("Mg_ugfpqPHcCIVA=".into()));
        assert_eq!(
            Target::parse("/dev/@connections/Mg_ugfpqPHcCIVA%3D", "dev"),
            id()
        );
        assert_eq!(
            Target::parse("/@connections/Mg_ugfpqPHcCIVA%3D", "dev"),
            id()
        );
        assert_eq!(
            Target::parse("/dev/%40connections/Mg_ugfpqPHcCIVA=", "dev"),
            id()
        );
        assert_eq!(
            Target::parse("/prod/@connections/x", "dev"),
            Some(Target::WrongStage)
        );
        assert_eq!(
            Target::parse("/dev/@connections", "dev"),
            Some(Target::Connections)
        );
        assert_eq!(Target::parse("/@broadcast", "dev"), Some(Target::Broadcast));
        assert_eq!(
            Target::parse("/dev/@groups/room", "dev"),
            Some(Target::Group("room".into()))
        );
        assert_eq!(
            Target::parse("/dev/@groups/room/connections/Mg_ugfpqPHcCIVA%3D", "dev"),
            Some(Target::GroupMember(
                "room".into(),
                "Mg_ugfpqPHcCIVA=".into()
            ))
        );
        assert_eq!(
            Target::parse("/@users/alice", "dev"),
            Some(Target::User("alice".into()))
        );
        assert_eq!(
            Target::parse("/dev/@openapi.json", "dev"),
            Some(Target::OpenApi)
        );
        assert_eq!(
            Target::parse("/dev/@groups/room/members/x", "dev"),
            Some(Target::Unknown)
        );
        assert_eq!(
            Target::parse("/prod/@broadcast", "dev"),
            Some(Target::WrongStage)
        );
        assert_eq!(
            Target::parse("/dev/@connections/a/b", "dev"),
            Some(Target::Unknown)
        );
        assert_eq!(Target::parse("/metrics", "dev"), Some(Target::Metrics));
        assert_eq!(Target::parse("/dev/metrics", "dev"), Some(Target::Metrics));
        assert_eq!(Target::parse("/prod/metrics", "dev"), None);
        assert_eq!(Target::parse("/dev", "dev"), None);
        assert_eq!(Target::parse("/dev/other", "dev"), None);
    }
}
