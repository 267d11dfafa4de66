-- wrk script for bench/llm.sh: POSTs an OpenAI chat completion and checks
-- every answer.
-- Env: LLM_KEY    bearer token (none when empty)
--      LLM_STREAM 1 = "stream": true
--      LLM_MODEL  model name (default double-1)
-- A response counts as bad unless it is a 200 whose body is complete: a
-- streamed one must end with "data: [DONE]", a plain one must carry "usage".
-- done() prints "bad_responses N" for the caller to check.
local key = os.getenv("LLM_KEY") or ""
local stream = os.getenv("LLM_STREAM") == "1"
local model = os.getenv("LLM_MODEL") or "double-1"

wrk.method = "POST"
wrk.path = "/v1/chat/completions"
wrk.headers["Content-Type"] = "application/json"
if key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end
local body = '{"model":"' .. model .. '","messages":[{"role":"user","content":"Say hello to the benchmark."}],"max_tokens":16'
if stream then
  body = body .. ',"stream":true'
end
wrk.body = body .. '}'

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  bad = 0
  first_bad = ""
end

function response(status, headers, body)
  local ok
  if status ~= 200 then
    ok = false
  elseif stream then
    ok = string.find(body, "data: [DONE]", 1, true) ~= nil
  else
    ok = string.find(body, '"usage"', 1, true) ~= nil
  end
  if not ok then
    bad = bad + 1
    if first_bad == "" then
      first_bad = status .. " " .. string.sub(body or "", 1, 300)
    end
  end
end

function done(summary, latency, requests)
  local total, sample = 0, ""
  for _, t in ipairs(threads) do
    total = total + (t:get("bad") or 0)
    local s = t:get("first_bad")
    if sample == "" and s and s ~= "" then sample = s end
  end
  io.write(string.format("bad_responses %d\n", total))
  if sample ~= "" then
    io.write("first_bad " .. string.gsub(sample, "\n", " ") .. "\n")
  end
end
