-- wrk script for bench/run: POST an OpenAI chat request.
-- BENCH_MODEL  model (route name for Meridian, gpt-4o-mini for direct/nginx)
-- BENCH_STREAM "1" to ask for a stream
local model  = os.getenv("BENCH_MODEL") or "gpt-4o-mini"
local stream = os.getenv("BENCH_STREAM") == "1"

wrk.method = "POST"
wrk.headers["Content-Type"]  = "application/json"
wrk.headers["Authorization"] = "Bearer sk-client"
if stream then
  wrk.headers["Accept"] = "text/event-stream"
  wrk.body = '{"model":"' .. model .. '","stream":true,"messages":[{"role":"user","content":"hi"}]}'
else
  wrk.body = '{"model":"' .. model .. '","messages":[{"role":"user","content":"hi"}]}'
end
