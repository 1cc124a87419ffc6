-- wrk script: creates customers c1, c2, … (email c<i>@seed.io, phone <i>) one after another.
local i = 0
request = function()
  i = i + 1
  local body = string.format('{"email":"c%d@seed.io","phoneNumber":"%d"}', i, i)
  return wrk.format("POST", "/identify", {["Content-Type"] = "application/json"}, body)
end
