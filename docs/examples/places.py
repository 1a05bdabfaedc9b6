#!/usr/bin/env python3
"""Print 3,000 made-up places as CSV (key,lat,lon,kind,name): cafés, parks
and museums scattered around twelve cities, the same every run (a fixed
seed), for the worked example in docs/QUERIES.md."""
import math
import random

CITIES = [
    ("berlin", 52.5200, 13.4050), ("paris", 48.8566, 2.3522),
    ("london", 51.5074, -0.1278), ("new-york", 40.7128, -74.0060),
    ("tokyo", 35.6762, 139.6503), ("sydney", -33.8688, 151.2093),
    ("sao-paulo", -23.5505, -46.6333), ("nairobi", -1.2921, 36.8219),
    ("suva", -18.1416, 178.4419), ("anchorage", 61.2181, -149.9003),
    ("reykjavik", 64.1466, -21.9426), ("singapore", 1.3521, 103.8198),
]
KINDS = ["cafe", "park", "museum"]

rng = random.Random(42)
for i in range(3000):
    city, lat, lon = CITIES[i % len(CITIES)]
    # Up to about 15 km from the centre, uniformly over the disc.
    r, a = 15_000 * math.sqrt(rng.random()), rng.random() * 2 * math.pi
    dlat = math.degrees(r * math.cos(a) / 6_371_008.8)
    dlon = math.degrees(r * math.sin(a) / (6_371_008.8 * math.cos(math.radians(lat))))
    kind = KINDS[rng.randrange(3)]
    print(f"place{i:04d},{lat + dlat:.6f},{lon + dlon:.6f},{kind},{kind} {i} in {city}")
