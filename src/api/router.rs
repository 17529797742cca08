//! The hand-rolled router: path patterns such as `/api/v1/messages/{id}`
//! are split into segments once, at start; a request path is matched
//! segment by segment without allocating, and its parameters are borrowed
//! from the path. It also knows which methods a path allows, for `405`.

/// Most parameters a pattern may have.
pub const MAX_PARAMS: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Segment {
    Literal(&'static str),
    Param,
}

/// The parameters of a matched path, in pattern order.
#[derive(Debug, Clone, Copy)]
pub struct Params<'p> {
    values: [&'p str; MAX_PARAMS],
    len: usize,
}

impl<'p> Params<'p> {
    pub fn get(&self, i: usize) -> Option<&'p str> {
        self.values.get(..self.len).and_then(|v| v.get(i)).copied()
    }
}

struct Route<T> {
    segments: Vec<Segment>,
    methods: Vec<(&'static str, T)>,
    /// The `Allow` header value.
    allow: String,
}

/// The result of looking a request up.
pub enum Lookup<'r, 'p, T> {
    Found(&'r T, Params<'p>),
    /// The path exists; the method does not. Carries the `Allow` value.
    MethodNotAllowed(&'r str),
    NotFound,
}

pub struct Router<T> {
    routes: Vec<Route<T>>,
}

impl<T> Default for Router<T> {
    fn default() -> Self {
        Router { routes: Vec::new() }
    }
}

impl<T> Router<T> {
    pub fn new() -> Router<T> {
        Router::default()
    }

    /// Adds `method pattern`. A `{name}` segment matches any one non-empty
    /// segment. A `GET` route answers `HEAD` too.
    ///
    /// # Panics
    /// At start, on a pattern with more than [`MAX_PARAMS`] parameters or
    /// not starting with `/`: a programming error, never reachable from a request.
    pub fn route(mut self, method: &'static str, pattern: &'static str, handler: T) -> Self {
        assert!(
            pattern.starts_with('/'),
            "route pattern must start with /: {pattern}"
        );
        let segments: Vec<Segment> = pattern[1..]
            .split('/')
            .map(|s| {
                if s.starts_with('{') && s.ends_with('}') {
                    Segment::Param
                } else {
                    Segment::Literal(s)
                }
            })
            .collect();
        let params = segments.iter().filter(|s| **s == Segment::Param).count();
        assert!(params <= MAX_PARAMS, "too many parameters in {pattern}");
        let idx = match self.routes.iter().position(|r| r.segments == segments) {
            Some(i) => i,
            None => {
                self.routes.push(Route {
                    segments,
                    methods: Vec::new(),
                    allow: String::new(),
                });
                self.routes.len() - 1
            }
        };
        let route = &mut self.routes[idx];
        route.methods.push((method, handler));
        let mut allow: Vec<&str> = route.methods.iter().map(|(m, _)| *m).collect();
        if allow.contains(&"GET") && !allow.contains(&"HEAD") {
            allow.push("HEAD");
        }
        route.allow = allow.join(", ");
        self
    }

    pub fn lookup<'r, 'p>(&'r self, method: &str, path: &'p str) -> Lookup<'r, 'p, T> {
        let Some(rest) = path.strip_prefix('/') else {
            return Lookup::NotFound;
        };
        for route in &self.routes {
            if let Some(params) = match_segments(&route.segments, rest) {
                let method = if method == "HEAD" { "GET" } else { method };
                return match route.methods.iter().find(|(m, _)| *m == method) {
                    Some((_, handler)) => Lookup::Found(handler, params),
                    None => Lookup::MethodNotAllowed(&route.allow),
                };
            }
        }
        Lookup::NotFound
    }
}

fn match_segments<'p>(segments: &[Segment], path: &'p str) -> Option<Params<'p>> {
    let mut params = Params {
        values: [""; MAX_PARAMS],
        len: 0,
    };
    // `rest` is what follows the previous segment's `/`; `None` once the
    // last segment has been taken.
    let mut rest = Some(path);
    for seg in segments {
        let current = rest?;
        let part = match current.bytes().position(|b| b == b'/') {
            Some(i) => {
                rest = current.get(i + 1..);
                current.get(..i)?
            }
            None => {
                rest = None;
                current
            }
        };
        match seg {
            Segment::Literal(lit) if *lit == part => {}
            Segment::Literal(_) => return None,
            Segment::Param if part.is_empty() => return None,
            Segment::Param => {
                *params.values.get_mut(params.len)? = part;
                params.len += 1;
            }
        }
    }
    if rest.is_some() {
        return None;
    }
    Some(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router<u8> {
        Router::new()
            .route("GET", "/health", 1)
            .route("POST", "/api/v1/messages", 2)
            .route("GET", "/api/v1/messages/{id}", 3)
            .route("PATCH", "/api/v1/messages/{id}", 4)
            .route("GET", "/api/v1/conversations/{id}/messages", 5)
    }

    #[test]
    fn matches_and_captures() {
        let r = router();
        assert!(matches!(r.lookup("GET", "/health"), Lookup::Found(1, _)));
        assert!(matches!(r.lookup("HEAD", "/health"), Lookup::Found(1, _)));
        match r.lookup("PATCH", "/api/v1/messages/abc") {
            Lookup::Found(4, p) => assert_eq!(p.get(0), Some("abc")),
            _ => panic!("no match"),
        }
        match r.lookup("GET", "/api/v1/conversations/c1/messages") {
            Lookup::Found(5, p) => {
                assert_eq!(p.get(0), Some("c1"));
                assert_eq!(p.get(1), None);
            }
            _ => panic!("no match"),
        }
    }

    #[test]
    fn not_found_and_not_allowed() {
        let r = router();
        for path in [
            "/",
            "/healthz",
            "/health/",
            "/api/v1/messages/",
            "health",
            "/api/v1/messages/a/b",
        ] {
            assert!(matches!(r.lookup("GET", path), Lookup::NotFound), "{path}");
        }
        match r.lookup("DELETE", "/api/v1/messages/x") {
            Lookup::MethodNotAllowed(allow) => assert_eq!(allow, "GET, PATCH, HEAD"),
            _ => panic!("expected 405"),
        }
        match r.lookup("POST", "/health") {
            Lookup::MethodNotAllowed(allow) => assert_eq!(allow, "GET, HEAD"),
            _ => panic!("expected 405"),
        }
    }
}
