-- wrk script for bench/capture.py; the same script drives the baseline (POST /bench/bare), the submissions
-- and the healthz context runs, so the client does the same work per request on both sides of the ratio.
--
--   wrk -s bench/capture.lua URL -- PATH EXPECTED_STATUS [BODY_TEMPLATE EMAIL_PREFIX ORIGIN]
--
-- Without a body it sends GET PATH. With one it POSTs BODY_TEMPLATE as JSON with an Origin header, its
-- "{email}" replaced by an address unique to the run (prefix), the wrk thread and a per-thread counter:
-- every request is a new reader. done() prints one RESULT line for bench/capture.py to parse.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_id", #threads)
end

function init(args)
  path = args[1]
  expected = tonumber(args[2])
  template = args[3]
  prefix = args[4]
  counter, sent, ok, bad = 0, 0, 0, 0
  if template then
    headers = { ["Content-Type"] = "application/json", ["Origin"] = args[5] }
  else
    fixed = wrk.format("GET", path)
  end
end

function request()
  sent = sent + 1
  if not template then
    return fixed
  end
  counter = counter + 1
  local email = string.format("%s-t%d-%d@bench.example.com", prefix, thread_id, counter)
  -- A function replacement, so nothing in the address is read as a gsub pattern.
  local body = template:gsub("{email}", function() return email end)
  return wrk.format("POST", path, headers, body)
end

function response(status, _headers, _body)
  if status == expected then
    ok = ok + 1
  else
    bad = bad + 1
  end
end

function done(summary, latency, _requests)
  local total_sent, total_ok, total_bad = 0, 0, 0
  for _, thread in ipairs(threads) do
    total_sent = total_sent + thread:get("sent")
    total_ok = total_ok + thread:get("ok")
    total_bad = total_bad + thread:get("bad")
  end
  -- wrk calls request() once on the first thread to check the script before it connects: not sent.
  total_sent = total_sent - 1
  local e = summary.errors
  io.write(string.format(
    "RESULT duration_us=%d requests=%d sent=%d expected=%d unexpected=%d " ..
    "connect_errors=%d read_errors=%d write_errors=%d timeouts=%d p50_us=%d p99_us=%d\n",
    summary.duration, summary.requests, total_sent, total_ok, total_bad,
    e.connect, e.read, e.write, e.timeout, latency:percentile(50), latency:percentile(99)))
end
