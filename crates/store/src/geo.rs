//! Geographic regions and the geohash cells that cover them (pure).
//!
//! A `_geo` index entry is named by its point's 12-character geohash
//! (`index::geo_bytes`), so the points in one geohash cell are one range
//! of entries. A query turns its region (a circle or a box) into at most
//! two boxes (split at the antimeridian; a circle around a pole widens to
//! every longitude), covers each box with at most [`COVER_CELLS_MAX`]
//! cells of one precision, scans those ranges, and keeps exactly the
//! points the region contains ([`Region::contains`]): the cells may hold
//! points outside the region, never miss one inside it (the property test
//! below checks both against brute force).
//!
//! Distances are great-circle on a sphere of radius [`EARTH_RADIUS_M`]
//! (the IUGG mean radius), by the haversine formula: within 0.5% of the
//! WGS84 ellipsoid's geodesic everywhere.

/// Mean radius of the Earth, in metres (IUGG).
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;
/// Largest radius a query may ask for: half the circumference.
pub const RADIUS_MAX_M: f64 = std::f64::consts::PI * EARTH_RADIUS_M;
/// Cells one box is covered with, at most.
pub const COVER_CELLS_MAX: usize = 32;
const BASE32: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";

/// A point: latitude and longitude in decimal degrees.
pub type Point = (f64, f64);

/// What a geographic query asks for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Region {
    /// Points within `radius_m` of `center`.
    Circle {
        /// The centre.
        center: Point,
        /// Metres.
        radius_m: f64,
    },
    /// Points with latitude in `[min_lat, max_lat]` and longitude from
    /// `min_lon` east to `max_lon` (across the antimeridian when
    /// `min_lon > max_lon`).
    Box {
        /// Southern edge.
        min_lat: f64,
        /// Western edge.
        min_lon: f64,
        /// Northern edge.
        max_lat: f64,
        /// Eastern edge.
        max_lon: f64,
    },
}

/// Great-circle distance between two points, in metres.
pub fn distance_m(a: Point, b: Point) -> f64 {
    let (la1, la2) = (a.0.to_radians(), b.0.to_radians());
    let dlat = la2 - la1;
    let dlon = (b.1 - a.1).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
}

impl Region {
    /// Whether the region holds `p` (edges included).
    pub fn contains(&self, p: Point) -> bool {
        match *self {
            Region::Circle { center, radius_m } => distance_m(center, p) <= radius_m,
            Region::Box {
                min_lat,
                min_lon,
                max_lat,
                max_lon,
            } => {
                let lat_ok = (min_lat..=max_lat).contains(&p.0);
                let lon_ok = if min_lon <= max_lon {
                    (min_lon..=max_lon).contains(&p.1)
                } else {
                    p.1 >= min_lon || p.1 <= max_lon
                };
                lat_ok && lon_ok
            }
        }
    }

    /// The point distances are measured from: a circle's centre, a box's.
    pub fn center(&self) -> Point {
        match *self {
            Region::Circle { center, .. } => center,
            Region::Box {
                min_lat,
                min_lon,
                max_lat,
                max_lon,
            } => {
                let width = if min_lon <= max_lon {
                    max_lon - min_lon
                } else {
                    360.0 - min_lon + max_lon
                };
                let mut lon = min_lon + width / 2.0;
                if lon > 180.0 {
                    lon -= 360.0;
                }
                ((min_lat + max_lat) / 2.0, lon)
            }
        }
    }

    /// Boxes (min_lat, min_lon, max_lat, max_lon), none crossing the
    /// antimeridian, that together hold the region.
    pub fn boxes(&self) -> Vec<[f64; 4]> {
        match *self {
            Region::Box {
                min_lat,
                min_lon,
                max_lat,
                max_lon,
            } => split_lon(min_lat, max_lat, min_lon, max_lon),
            Region::Circle { center, radius_m } => {
                let dlat = (radius_m / EARTH_RADIUS_M).to_degrees();
                let (min_lat, max_lat) = (center.0 - dlat, center.0 + dlat);
                if min_lat <= -90.0 || max_lat >= 90.0 {
                    // A pole is inside: every longitude reaches it.
                    return vec![[min_lat.max(-90.0), -180.0, max_lat.min(90.0), 180.0]];
                }
                // The meridians the circle touches, as seen from its
                // centre's latitude (exact for a sphere).
                let s = (radius_m / EARTH_RADIUS_M).sin() / center.0.to_radians().cos();
                if s.is_nan() || s >= 1.0 {
                    return vec![[min_lat, -180.0, max_lat, 180.0]];
                }
                let dlon = s.asin().to_degrees();
                let (west, east) = (center.1 - dlon, center.1 + dlon);
                let wrap = |l: f64| {
                    if l < -180.0 {
                        l + 360.0
                    } else if l > 180.0 {
                        l - 360.0
                    } else {
                        l
                    }
                };
                split_lon(min_lat, max_lat, wrap(west), wrap(east))
            }
        }
    }

    /// Geohash cells (all of one precision per box) whose points include
    /// every point of the region.
    pub fn cover(&self) -> Vec<String> {
        let mut cells: Vec<String> = self.boxes().iter().flat_map(cover_box).collect();
        cells.sort();
        cells.dedup();
        // A coarser cell of one box may contain a finer one of the other.
        let mut out: Vec<String> = Vec::with_capacity(cells.len());
        for c in cells {
            if !out
                .last()
                .is_some_and(|p: &String| c.starts_with(p.as_str()))
            {
                out.push(c);
            }
        }
        out
    }
}

fn split_lon(min_lat: f64, max_lat: f64, min_lon: f64, max_lon: f64) -> Vec<[f64; 4]> {
    if min_lon <= max_lon {
        vec![[min_lat, min_lon, max_lat, max_lon]]
    } else {
        vec![
            [min_lat, min_lon, max_lat, 180.0],
            [min_lat, -180.0, max_lat, max_lon],
        ]
    }
}

/// Bits of longitude and latitude in a geohash of `chars` characters.
fn bits(chars: usize) -> (u32, u32) {
    let total = 5 * chars as u32;
    (total.div_ceil(2), total / 2)
}

/// The cell index of `v` in `[lo, lo + span]` cut into `2^bits` cells
/// (the geohash bisection: a value on a boundary goes up).
fn cell_index(v: f64, lo: f64, span: f64, bits: u32) -> u64 {
    let n = 1u64 << bits;
    let i = ((v - lo) / span * n as f64).floor();
    (i.max(0.0) as u64).min(n - 1)
}

/// The geohash of the cell at `chars` characters that holds `p`.
pub fn point_cell(p: Point, chars: usize) -> String {
    let (lon_bits, lat_bits) = bits(chars);
    cell_hash(
        cell_index(p.0, -90.0, 180.0, lat_bits),
        cell_index(p.1, -180.0, 360.0, lon_bits),
        chars,
    )
}

/// The geohash of cell (`ilat`, `ilon`) at `chars` characters.
fn cell_hash(ilat: u64, ilon: u64, chars: usize) -> String {
    let (lon_bits, lat_bits) = bits(chars);
    let mut out = String::with_capacity(chars);
    let (mut lon_left, mut lat_left) = (lon_bits, lat_bits);
    let mut code = 0usize;
    for i in 0..5 * chars {
        let bit = if i % 2 == 0 {
            lon_left -= 1;
            (ilon >> lon_left) & 1
        } else {
            lat_left -= 1;
            (ilat >> lat_left) & 1
        };
        code = (code << 1) | bit as usize;
        if i % 5 == 4 {
            out.push(char::from(BASE32[code]));
            code = 0;
        }
    }
    out
}

/// Cells of the finest precision with at most [`COVER_CELLS_MAX`] of them
/// covering the box.
fn cover_box(b: &[f64; 4]) -> Vec<String> {
    let [min_lat, min_lon, max_lat, max_lon] = *b;
    let span = |chars: usize| {
        let (lon_bits, lat_bits) = bits(chars);
        let lat = (
            cell_index(min_lat, -90.0, 180.0, lat_bits),
            cell_index(max_lat, -90.0, 180.0, lat_bits),
        );
        let lon = (
            cell_index(min_lon, -180.0, 360.0, lon_bits),
            cell_index(max_lon, -180.0, 360.0, lon_bits),
        );
        (lat, lon)
    };
    let count = |chars: usize| {
        let ((a, b), (c, d)) = span(chars);
        (b - a + 1).saturating_mul(d - c + 1)
    };
    let chars = (1..=crate::index::GEOHASH_CHARS)
        .take_while(|c| count(*c) <= COVER_CELLS_MAX as u64)
        .last()
        .unwrap_or(1);
    let ((lat0, lat1), (lon0, lon1)) = span(chars);
    let mut cells = Vec::new();
    for ilat in lat0..=lat1 {
        for ilon in lon0..=lon1 {
            cells.push(cell_hash(ilat, ilon, chars));
        }
    }
    cells
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hash12(p: Point) -> String {
        point_cell(p, 12)
    }

    #[test]
    fn cells_agree_with_the_crate() {
        // Standard geohashes, as the georust crate makes them (whose
        // encoding of the very edges, latitude 90 or longitude 180, wraps
        // to the other side; ours keeps them in the last cell, where the
        // covers look for them).
        for p in [
            (52.52, 13.405),
            (-33.86, 151.2),
            (0.0, 0.0),
            (89.9, 179.9),
            (-90.0, -180.0),
        ] {
            for chars in 1..=12 {
                let theirs = geohash::encode(geohash::Coord { x: p.1, y: p.0 }, chars).unwrap();
                assert_eq!(point_cell(p, chars), theirs, "{p:?} at {chars}");
            }
        }
    }

    #[test]
    fn known_distances() {
        let berlin = (52.520008, 13.404954);
        let paris = (48.856613, 2.352222);
        let d = distance_m(berlin, paris);
        assert!((d - 877_500.0).abs() < 2_000.0, "{d}");
        assert!(distance_m((0.0, 179.9), (0.0, -179.9)) < 23_000.0);
    }

    fn point() -> impl Strategy<Value = Point> {
        (-90.0f64..=90.0, -180.0f64..=180.0)
    }

    fn region() -> impl Strategy<Value = Region> {
        let circle = (point(), 1.0f64..3_000_000.0)
            .prop_map(|(center, radius_m)| Region::Circle { center, radius_m });
        let near_pole = (80.0f64..=90.0, -180.0f64..=180.0, 1.0f64..2_000_000.0).prop_map(
            |(lat, lon, radius_m)| Region::Circle {
                center: (lat, lon),
                radius_m,
            },
        );
        let bbox = (point(), 0.0f64..40.0, 0.0f64..120.0).prop_map(|((lat, lon), h, w)| {
            let mut max_lon = lon + w;
            if max_lon > 180.0 {
                max_lon -= 360.0;
            }
            Region::Box {
                min_lat: lat,
                min_lon: lon,
                max_lat: (lat + h).min(90.0),
                max_lon,
            }
        });
        prop_oneof![circle, near_pole, bbox]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Against brute force: every point the region holds lies in a
        /// covering cell (so the scan finds it; `contains` then keeps
        /// exactly the region's points).
        #[test]
        fn the_cover_misses_no_point(r in region(), points in prop::collection::vec(point(), 200)) {
            let cells = r.cover();
            prop_assert!(cells.len() <= 2 * COVER_CELLS_MAX);
            // Points near the region's centre and edges too, not only
            // uniform ones (which a small region rarely holds).
            let c = r.center();
            let near = points.iter().map(|p| (c.0 + (p.0 / 90.0) * 0.05, c.1 + (p.1 / 180.0) * 0.05));
            // And the edges of the map: the poles and the antimeridian.
            let edges = [(90.0, 180.0), (90.0, -180.0), (-90.0, 0.0), (c.0, 180.0), (c.0, -180.0)];
            for p in points.iter().copied().chain(near).chain(edges) {
                if !(-90.0..=90.0).contains(&p.0) || !(-180.0..=180.0).contains(&p.1) {
                    continue;
                }
                if r.contains(p) {
                    let h = hash12(p);
                    prop_assert!(cells.iter().any(|cell| h.starts_with(cell.as_str())),
                        "{p:?} in {r:?} but in none of {cells:?}");
                }
            }
        }
    }
}
