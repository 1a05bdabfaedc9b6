//! Geographic queries over `_geo` indexes:
//! `GET /buckets/B/geo/NAME?lat=..&lon=..&radius_m=..` (within a radius,
//! nearest first) and `?bbox=MINLAT,MINLON,MAXLAT,MAXLON` (a box, which
//! may cross the antimeridian; ordered by distance from its centre), with
//! `max_results` and `continuation`.
//!
//! The region's covering geohash cells (`store::geo`) become the ranges of
//! one index query (`node::index_query`), so a query costs a seek per cell
//! per partition plus the points in the cells; the points are then tested
//! exactly against the region, and sorted by distance. A query whose
//! cells hold more than [`CANDIDATES_MAX`] points is refused with a 400
//! that says to narrow it, rather than read without bound.

use crate::error::ApiError;
use crate::params::{self, raw, Pairs};
use crate::App;
use axum::body::Bytes;
use axum::extract::{Query, RawPathParams, State};
use axum::response::{IntoResponse, Json, Response};
use base64::Engine as _;
use node::IndexPageQuery;
use serde_json::json;
use store::geo::{distance_m, Region, RADIUS_MAX_M};
use store::index::{entry_point, GEOHASH_CHARS};
use store::{ListStart, Listed};

/// Points a query may read from its cells, at most.
pub const CANDIDATES_MAX: usize = 50_000;
/// Results one answer holds, at most (and when no `max_results` is given).
pub const RESULTS_MAX: usize = 10_000;
/// Entries fetched per coverage page.
const PAGE: usize = 1000;

/// One point found: its distance from the query's centre, key, point.
type Found = (f64, String, (f64, f64));

pub(crate) async fn query(
    State(app): State<App>,
    path: RawPathParams,
    Query(q): Pairs,
) -> Result<Response, ApiError> {
    let path = raw(&path);
    let (bucket_type, bucket) = params::bucket(&path)?;
    let index = path
        .iter()
        .find(|(k, _)| k == "index")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    if !index.ends_with("_geo") {
        return Err(ApiError::bad(format!(
            "{index:?} is not a _geo index; geographic queries take indexes named NAME_geo"
        )));
    }
    let (region, max_results, after) = parse(&q)?;
    let ranges = region
        .cover()
        .into_iter()
        .map(|cell| (Bytes::from(cell.clone()), Some(Bytes::from(cell))))
        .collect();
    let mut query = IndexPageQuery {
        bucket_type,
        bucket,
        index,
        ranges,
        start: ListStart::First,
        page_max: PAGE,
    };
    let center = region.center();
    let mut found: Vec<Found> = Vec::new();
    let mut read = 0usize;
    loop {
        let page = app.node.index_page(&query).await?;
        read += page.entries.len();
        if read > CANDIDATES_MAX {
            return Err(ApiError::bad(format!(
                "the region's cells hold more than {CANDIDATES_MAX} points; ask for a \
                 smaller radius or box"
            )));
        }
        let last = page.entries.last().map(|e| e.name().clone());
        for e in page.entries {
            let Listed::Key { key: name, .. } = e else {
                continue;
            };
            let (Some(p), Some(key)) = (entry_point(&name), name.get(GEOHASH_CHARS + 16..)) else {
                continue;
            };
            if region.contains(p) {
                let key = String::from_utf8_lossy(key).into_owned();
                found.push((distance_m(center, p), key, p));
            }
        }
        match (page.truncated, last) {
            (true, Some(last)) => query.start = ListStart::After(last),
            _ => break,
        }
    }
    found.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    // An object with several points is listed once, at its nearest.
    let mut seen = std::collections::HashSet::new();
    found.retain(|f| seen.insert(f.1.clone()));
    if let Some((d, key)) = &after {
        found.retain(|f| (f.0, &f.1) > (*d, key));
    }
    let take = max_results.unwrap_or(RESULTS_MAX);
    let more = found.len() > take;
    found.truncate(take);
    let results: Vec<_> = found
        .iter()
        .map(|(d, key, p)| json!({ "key": key, "distance_m": d, "lat": p.0, "lon": p.1 }))
        .collect();
    let mut body = json!({ "results": results });
    if let (true, Some(last)) = (more, found.last()) {
        body["continuation"] = json!(continuation(last.0, &last.1));
    }
    Ok(Json(body).into_response())
}

fn continuation(distance: f64, key: &str) -> String {
    let raw = [&distance.to_be_bytes()[..], key.as_bytes()].concat();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// A number as an error message shows it: plain when short, in exponent
/// form when huge, so a hostile `1e300` answers a few bytes, not 300 digits.
fn shown(x: f64) -> String {
    if x.abs() < 1e9 {
        x.to_string()
    } else {
        format!("{x:e}")
    }
}

/// The region, `max_results` and where the page starts.
#[allow(clippy::type_complexity)]
fn parse(
    q: &[(String, String)],
) -> Result<(Region, Option<usize>, Option<(f64, String)>), ApiError> {
    let mut lat = None;
    let mut lon = None;
    let mut radius = None;
    let mut bbox = None;
    let mut max_results = None;
    let mut after = None;
    let num = |k: &str, v: &str| {
        v.parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .ok_or_else(|| ApiError::bad(format!("{k} must be a number, not {v:?}")))
    };
    for (k, v) in q {
        match k.as_str() {
            "lat" => lat = Some(num(k, v)?),
            "lon" => lon = Some(num(k, v)?),
            "radius_m" => radius = Some(num(k, v)?),
            "bbox" => {
                let parts: Vec<f64> = v
                    .split(',')
                    .map(|p| num("bbox", p.trim()))
                    .collect::<Result<_, _>>()?;
                let [a, b, c, d] = parts[..] else {
                    return Err(ApiError::bad(format!(
                        "bbox is MINLAT,MINLON,MAXLAT,MAXLON, not {v:?}"
                    )));
                };
                bbox = Some((a, b, c, d));
            }
            "max_results" => {
                let n = v
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=RESULTS_MAX).contains(n));
                max_results = Some(n.ok_or_else(|| {
                    ApiError::bad(format!("max_results must be 1..={RESULTS_MAX}, not {v:?}"))
                })?);
            }
            "continuation" => {
                let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(v)
                    .ok()
                    .filter(|r| r.len() >= 8);
                let raw = raw.ok_or_else(|| {
                    ApiError::bad(format!("continuation {v:?} is not one this API gave"))
                })?;
                let d = f64::from_be_bytes(raw[..8].try_into().unwrap_or([0; 8]));
                after = Some((d, String::from_utf8_lossy(&raw[8..]).into_owned()));
            }
            "timeout" => {}
            other => {
                return Err(ApiError::bad(format!(
                    "unknown geo query parameter {other:?} (lat, lon, radius_m, bbox, \
                     max_results, continuation)"
                )))
            }
        }
    }
    let lat_ok = |l: f64| (-90.0..=90.0).contains(&l);
    let lon_ok = |l: f64| (-180.0..=180.0).contains(&l);
    let region = match (lat, lon, radius, bbox) {
        (Some(lat), Some(lon), Some(radius_m), None) => {
            if !lat_ok(lat) || !lon_ok(lon) {
                return Err(ApiError::bad(format!(
                    "lat must be in [-90, 90] and lon in [-180, 180], not {},{}",
                    shown(lat),
                    shown(lon)
                )));
            }
            if !(radius_m > 0.0 && radius_m <= RADIUS_MAX_M) {
                return Err(ApiError::bad(format!(
                    "radius_m must be in (0, {RADIUS_MAX_M:.0}], not {}",
                    shown(radius_m)
                )));
            }
            Region::Circle {
                center: (lat, lon),
                radius_m,
            }
        }
        (None, None, None, Some((min_lat, min_lon, max_lat, max_lon))) => {
            if !lat_ok(min_lat) || !lat_ok(max_lat) || !lon_ok(min_lon) || !lon_ok(max_lon) {
                return Err(ApiError::bad(
                    "bbox latitudes must be in [-90, 90] and longitudes in [-180, 180]".into(),
                ));
            }
            if min_lat > max_lat {
                return Err(ApiError::bad(format!(
                    "bbox: MINLAT {min_lat} is north of MAXLAT {max_lat}"
                )));
            }
            Region::Box {
                min_lat,
                min_lon,
                max_lat,
                max_lon,
            }
        }
        _ => {
            return Err(ApiError::bad(
                "a geo query takes lat, lon and radius_m, or bbox=MINLAT,MINLON,MAXLAT,MAXLON"
                    .into(),
            ))
        }
    };
    Ok((region, max_results, after))
}
