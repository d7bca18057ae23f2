"""Reads JSON lines {"cron": fields, "zone": name, "start": epoch} and prints, per line, croniter's next firing after
start in that zone (epoch seconds) and whether the zone's UTC offset differs between start and that firing (the DST
cases are checked by their own tests against the stated rules, not against croniter's)."""
import json, sys
from datetime import datetime
from zoneinfo import ZoneInfo
from croniter import croniter

for line in sys.stdin:
    case = json.loads(line)
    zone = ZoneInfo(case["zone"])
    start = datetime.fromtimestamp(case["start"], zone)
    fields = case["cron"].split()
    it = croniter(" ".join(fields), start, second_at_beginning=len(fields) == 6)
    nxt = it.get_next(datetime)
    crossed = start.utcoffset() != nxt.astimezone(zone).utcoffset()
    print(json.dumps({"next": int(nxt.timestamp()), "dst": crossed}), flush=True)
