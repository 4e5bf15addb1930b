-- wrk script for bench/run: POST an OpenAI chat request.
-- BENCH_MODEL   model (route name for Meridian, gpt-4o-mini for the others)
-- BENCH_STREAM  "1" to ask for a stream
-- BENCH_HEADERS extra headers, one "Name: value" a line (Portkey's routing)
local model  = os.getenv("BENCH_MODEL") or "gpt-4o-mini"
local stream = os.getenv("BENCH_STREAM") == "1"

wrk.method = "POST"
wrk.headers["Content-Type"]  = "application/json"
wrk.headers["Authorization"] = "Bearer sk-client"
for line in string.gmatch(os.getenv("BENCH_HEADERS") or "", "[^\n]+") do
  local name, value = line:match("^([^:]+):%s*(.-)%s*$")
  if name then wrk.headers[name] = value end
end
if stream then
  wrk.headers["Accept"] = "text/event-stream"
  wrk.body = '{"model":"' .. model .. '","stream":true,"messages":[{"role":"user","content":"hi"}]}'
else
  wrk.body = '{"model":"' .. model .. '","messages":[{"role":"user","content":"hi"}]}'
end
