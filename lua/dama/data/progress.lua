-- dama.data.progress: a one-line progress bar with rate and ETA for long jobs (the set builders):
-- progress(total, unit, opts) and the bar's update(done, extra) and finish(); wall_time(), the monotonic wall
-- clock it uses.
local ffi = require('dama.ffi').ffi

local M = {}

-- A one-line progress bar on stderr: bar = D.progress(total, 'tiles'); bar:update(done, 'extra text');
-- bar:finish(). Rate and ETA from the wall clock; redraws at most 10 times a second (always on finish).
local Progress = {}
Progress.__index = Progress

-- Monotonic wall clock in seconds: the same declaration as dama.train's (whichever runs first wins).
local function wall()
  if not M._tv then
    pcall(ffi.cdef, 'typedef struct { long tv_sec; long tv_nsec; } dama_timespec; int clock_gettime(int, dama_timespec *);')
    M._tv = ffi.new('dama_timespec')
  end
  ffi.C.clock_gettime(1, M._tv)
  return tonumber(M._tv.tv_sec) + tonumber(M._tv.tv_nsec) * 1e-9
end
M.wall_time = wall

local function fmt_time(s)
  s = math.max(0, math.floor(s + 0.5))
  if s >= 3600 then return string.format('%d:%02d:%02d', math.floor(s / 3600), math.floor(s / 60) % 60, s % 60) end
  return string.format('%d:%02d', math.floor(s / 60), s % 60)
end

local function stderr_is_tty()
  pcall(ffi.cdef, 'int isatty(int fd);')
  local ok, r = pcall(function() return ffi.C.isatty(2) end)
  return ok and r == 1
end

-- opts: quiet, out (a file-like object; default io.stderr), tty (redraw in place with '\r'; default: whether
-- stderr is a terminal; otherwise a new line at most every 10 s and at the end).
function M.progress(total, unit, opts)
  opts = opts or {}
  local tty = opts.tty
  if tty == nil then tty = opts.out == nil and stderr_is_tty() end
  return setmetatable({total = total, unit = unit or 'items', t0 = wall(), last = -1e9, quiet = opts.quiet,
                       out = opts.out or io.stderr, tty = tty}, Progress)
end

function Progress:update(done, extra, force)
  if self.quiet then return end
  local t = wall()
  if not force and t - self.last < (self.tty and 0.1 or 10) then return end
  if not self.tty and done == self.last_done then return end   -- a log gets each state once
  self.last, self.last_done = t, done
  local el = t - self.t0
  local rate = el > 0 and done / el or 0
  local eta = rate > 0 and (self.total - done) / rate or 0
  local width = 24
  local fill = self.total > 0 and math.floor(width * done / self.total) or width
  self.out:write(string.format('%s[%s%s] %s %d/%d  %s  %.2f %s/s  elapsed %s  ETA %s %s', self.tty and '\r' or '',
    string.rep('#', fill),
    string.rep('.', width - fill), self.unit, done, self.total, extra or '', rate, self.unit, fmt_time(el),
    fmt_time(eta), self.tty and '' or '\n'))
  self.out:flush()
end

function Progress:finish(done, extra)
  self:update(done or self.total, extra, true)
  if not self.quiet and self.tty then self.out:write('\n') end
  return wall() - self.t0
end

return M
