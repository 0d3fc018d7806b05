-- wrk script for bench/clicks.py; the same script drives the baseline (GET /bench/redirect/…) and the click
-- redirect (GET /l/<token>), so the client does the same work per request on both sides of the ratio.
--
--   wrk -s bench/clicks.lua URL -- PATHS_FILE EXPECTED_STATUS USER_AGENT [PAUSE_MS]
--
-- PATHS_FILE holds one path a line; requests take them in order (one wrk thread), so every request of a run
-- is a different link, as long as the file holds more paths than the run sends. The User-Agent is a
-- browser's: without one, leadcapture.scanners takes a click for software. done() prints one RESULT line for
-- bench/clicks.py to parse. With PAUSE_MS, each connection waits after a response before it sends its next
-- request, as a reader pauses between clicks: PAUSE_MS on average, drawn at random (exponentially) so the
-- connections do not fall into step and arrive together. A load below what the server can take, to measure
-- latency at.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  paths = {}
  for line in io.lines(args[1]) do
    table.insert(paths, line)
  end
  expected = tonumber(args[2])
  headers = { ["User-Agent"] = args[3] }
  local pause = tonumber(args[4] or "0")
  if pause > 0 then
    -- wrk looks for delay() after init(): without a pause, requests follow responses at once.
    delay = function()
      return -math.log(1 - math.random()) * pause
    end
  end
  index, sent, ok, bad, wrapped = 0, 0, 0, 0, 0
end

function request()
  sent = sent + 1
  index = index + 1
  if index > #paths then
    index, wrapped = 1, wrapped + 1
  end
  return wrk.format("GET", paths[index], headers)
end

function response(status, _headers, _body)
  if status == expected then
    ok = ok + 1
  else
    bad = bad + 1
  end
end

function done(summary, latency, _requests)
  local total_sent, total_ok, total_bad, total_wrapped = 0, 0, 0, 0
  for _, thread in ipairs(threads) do
    total_sent = total_sent + thread:get("sent")
    total_ok = total_ok + thread:get("ok")
    total_bad = total_bad + thread:get("bad")
    total_wrapped = total_wrapped + thread:get("wrapped")
  end
  -- wrk calls request() once on the first thread to check the script before it connects: not sent.
  total_sent = total_sent - 1
  local e = summary.errors
  io.write(string.format(
    "RESULT duration_us=%d requests=%d sent=%d expected=%d unexpected=%d wrapped=%d " ..
    "connect_errors=%d read_errors=%d write_errors=%d timeouts=%d p50_us=%d p99_us=%d\n",
    summary.duration, summary.requests, total_sent, total_ok, total_bad, total_wrapped,
    e.connect, e.read, e.write, e.timeout, latency:percentile(50), latency:percentile(99)))
end
