-- wrk script: a read-heavy mix on customers created by seed.lua (KNOWN of them):
-- 90% a known customer by email, phone or both (nothing new: the read path),
-- 10% a brand-new customer (the write path).
local KNOWN = tonumber(os.getenv("KNOWN") or "1000")
local counter = 0
local thread_id = 0

function setup(thread)
  thread:set("tid", thread_id)
  thread_id = thread_id + 1
end

function init(args)
  math.randomseed(os.time() + tid * 7919)
end

request = function()
  local body
  if math.random() < 0.9 then
    local i = math.random(1, KNOWN)
    local shape = math.random(1, 3)
    if shape == 1 then
      body = string.format('{"email":"c%d@seed.io"}', i)
    elseif shape == 2 then
      body = string.format('{"phoneNumber":"%d"}', i)
    else
      body = string.format('{"email":"c%d@seed.io","phoneNumber":"%d"}', i, i)
    end
  else
    counter = counter + 1
    body = string.format('{"email":"n%d-%d-%d@new.io"}', tid, counter, os.time())
  end
  return wrk.format("POST", "/identify", {["Content-Type"] = "application/json"}, body)
end

response = function(status, headers, body)
  if status ~= 200 then
    print("unexpected status " .. status .. ": " .. body)
  end
end
