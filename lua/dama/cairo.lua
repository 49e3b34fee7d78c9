-- dama.cairo: the part of Cairo (the 2-D library the `dama` program links) that dama.plot draws with, by FFI,
-- and a Figure: one drawing surface written as PNG, SVG or PDF by the file's extension.
--
--   local fig = dama.cairo.figure(640, 400)          -- width, height in points (= pixels in a PNG at scale 1)
--   local cr = fig.cr                                -- a cairo_t*: every cairo_* call works on it (fig.C)
--   fig:text(20, 30, 'loss', {size = 14, bold = true})
--   fig:save('loss.svg')                             -- .png, .svg or .pdf; written atomically
--
-- A Figure draws onto a Cairo recording surface and replays it onto the output surface at save time, so one drawing
-- gives every format, and a PNG can be written at any pixel density (fig:save('x.png', {scale = 2})).
local ffi = require 'ffi'

local M = {}

ffi.cdef [[
typedef struct _cairo cairo_t;
typedef struct _cairo_surface cairo_surface_t;
typedef struct _cairo_pattern cairo_pattern_t;
typedef struct { double x, y, width, height; } cairo_rectangle_t;
typedef struct { double x_bearing, y_bearing, width, height, x_advance, y_advance; } cairo_text_extents_t;
typedef struct { double ascent, descent, height, max_x_advance, max_y_advance; } cairo_font_extents_t;
const char *cairo_version_string(void);
const char *cairo_status_to_string(int status);
cairo_surface_t *cairo_image_surface_create(int format, int width, int height);
cairo_surface_t *cairo_image_surface_create_for_data(unsigned char *data, int format, int width, int height,
                                                     int stride);
int cairo_format_stride_for_width(int format, int width);
cairo_surface_t *cairo_recording_surface_create(int content, const cairo_rectangle_t *extents);
cairo_surface_t *cairo_svg_surface_create(const char *filename, double width_in_points, double height_in_points);
cairo_surface_t *cairo_pdf_surface_create(const char *filename, double width_in_points, double height_in_points);
int cairo_surface_write_to_png(cairo_surface_t *surface, const char *filename);
void cairo_surface_flush(cairo_surface_t *surface);
void cairo_surface_mark_dirty(cairo_surface_t *surface);
void cairo_surface_finish(cairo_surface_t *surface);
void cairo_surface_destroy(cairo_surface_t *surface);
int cairo_surface_status(cairo_surface_t *surface);
cairo_t *cairo_create(cairo_surface_t *target);
void cairo_destroy(cairo_t *cr);
int cairo_status(cairo_t *cr);
void cairo_save(cairo_t *cr);
void cairo_restore(cairo_t *cr);
void cairo_translate(cairo_t *cr, double tx, double ty);
void cairo_scale(cairo_t *cr, double sx, double sy);
void cairo_rotate(cairo_t *cr, double angle);
void cairo_set_source_rgb(cairo_t *cr, double red, double green, double blue);
void cairo_set_source_rgba(cairo_t *cr, double red, double green, double blue, double alpha);
void cairo_set_source_surface(cairo_t *cr, cairo_surface_t *surface, double x, double y);
cairo_pattern_t *cairo_get_source(cairo_t *cr);
void cairo_pattern_set_filter(cairo_pattern_t *pattern, int filter);
void cairo_set_line_width(cairo_t *cr, double width);
void cairo_set_line_cap(cairo_t *cr, int line_cap);
void cairo_set_line_join(cairo_t *cr, int line_join);
void cairo_set_dash(cairo_t *cr, const double *dashes, int num_dashes, double offset);
void cairo_new_path(cairo_t *cr);
void cairo_new_sub_path(cairo_t *cr);
void cairo_move_to(cairo_t *cr, double x, double y);
void cairo_line_to(cairo_t *cr, double x, double y);
void cairo_rectangle(cairo_t *cr, double x, double y, double width, double height);
void cairo_arc(cairo_t *cr, double xc, double yc, double radius, double angle1, double angle2);
void cairo_close_path(cairo_t *cr);
void cairo_stroke(cairo_t *cr);
void cairo_fill(cairo_t *cr);
void cairo_fill_preserve(cairo_t *cr);
void cairo_paint(cairo_t *cr);
void cairo_clip(cairo_t *cr);
void cairo_reset_clip(cairo_t *cr);
void cairo_select_font_face(cairo_t *cr, const char *family, int slant, int weight);
void cairo_set_font_size(cairo_t *cr, double size);
void cairo_text_extents(cairo_t *cr, const char *utf8, cairo_text_extents_t *extents);
void cairo_font_extents(cairo_t *cr, cairo_font_extents_t *extents);
void cairo_show_text(cairo_t *cr, const char *utf8);
]]
pcall(ffi.cdef, 'int getpid(void);')   -- declared once per process (train.lua declares it too)
local C = ffi.C
M.C = C

-- enum values of cairo.h (1.16)
M.FORMAT_RGB24, M.CONTENT_COLOR = 1, 0x1000
M.FILTER_NEAREST = 3
M.LINE_CAP_ROUND, M.LINE_JOIN_ROUND = 1, 1
M.FONT_WEIGHT_NORMAL, M.FONT_WEIGHT_BOLD = 0, 1

-- The font every figure uses: DejaVu Sans (Debian's fonts-dejavu-core) through fontconfig.
M.font = 'DejaVu Sans'

-- version() -> the Cairo version the program runs with, e.g. '1.16.0'
function M.version() return ffi.string(C.cairo_version_string()) end

local function status_error(what, st)
  return string.format('%s: %s', what, ffi.string(C.cairo_status_to_string(st)))
end

local Figure = {}
Figure.__index = Figure

-- figure(width, height) -> a Figure of that size in points, on a white background
function M.figure(width, height)
  if type(width) ~= 'number' or type(height) ~= 'number' or width < 1 or height < 1 or width > 32767
     or height > 32767 then
    error(string.format('plot: figure size must be 1..32767 points, got %s x %s', tostring(width),
      tostring(height)), 2)
  end
  local ext = ffi.new('cairo_rectangle_t', 0, 0, width, height)
  local surf = ffi.gc(C.cairo_recording_surface_create(M.CONTENT_COLOR, ext), C.cairo_surface_destroy)
  local cr = ffi.gc(C.cairo_create(surf), C.cairo_destroy)
  local fig = setmetatable({surface = surf, cr = cr, width = width, height = height, C = C}, Figure)
  C.cairo_set_source_rgb(cr, 1, 1, 1)
  C.cairo_paint(cr)
  C.cairo_select_font_face(cr, M.font, 0, M.FONT_WEIGHT_NORMAL)
  return fig
end

-- fig:colour({r, g, b[, a]}) -- set the source colour (components in 0..1)
function Figure:colour(c)
  if c[4] then C.cairo_set_source_rgba(self.cr, c[1], c[2], c[3], c[4])
  else C.cairo_set_source_rgb(self.cr, c[1], c[2], c[3]) end
end

-- fig:font(size[, bold]) -- the font size in points (and weight) for the next text
function Figure:font(size, bold)
  C.cairo_select_font_face(self.cr, M.font, 0, bold and M.FONT_WEIGHT_BOLD or M.FONT_WEIGHT_NORMAL)
  C.cairo_set_font_size(self.cr, size)
end

local extents = ffi.new('cairo_text_extents_t')

-- fig:text_size(str[, size[, bold]]) -> width, height of str in points
function Figure:text_size(str, size, bold)
  if size then self:font(size, bold) end
  C.cairo_text_extents(self.cr, tostring(str), extents)
  return extents.x_advance, extents.height
end

-- fig:text(x, y, str, opts) -- draw str; opts: size (10), bold, colour, align ('left', 'center', 'right'),
-- valign ('baseline', 'middle', 'top'), angle (radians, about (x, y))
function Figure:text(x, y, str, opts)
  opts = opts or {}
  str = tostring(str)
  local cr = self.cr
  self:font(opts.size or 10, opts.bold)
  self:colour(opts.colour or {0.15, 0.15, 0.15})
  C.cairo_text_extents(cr, str, extents)
  local dx = 0
  if opts.align == 'center' then dx = -extents.x_advance / 2 elseif opts.align == 'right' then dx = -extents.x_advance end
  local fe = ffi.new('cairo_font_extents_t')
  C.cairo_font_extents(cr, fe)
  local dy = 0
  if opts.valign == 'middle' then dy = (fe.ascent - fe.descent) / 2 elseif opts.valign == 'top' then dy = fe.ascent end
  C.cairo_save(cr)
  C.cairo_translate(cr, x, y)
  if opts.angle then C.cairo_rotate(cr, opts.angle) end
  C.cairo_move_to(cr, dx, dy)
  C.cairo_show_text(cr, str)
  C.cairo_restore(cr)
end

-- fig:line(points, opts) -- a polyline through {{x, y}, ...}; opts: colour, width (1), dash ({on, off})
function Figure:line(points, opts)
  opts = opts or {}
  local cr = self.cr
  if #points < 2 then return end
  C.cairo_save(cr)
  self:colour(opts.colour or {0, 0, 0})
  C.cairo_set_line_width(cr, opts.width or 1)
  C.cairo_set_line_join(cr, M.LINE_JOIN_ROUND)
  C.cairo_set_line_cap(cr, M.LINE_CAP_ROUND)
  if opts.dash then C.cairo_set_dash(cr, ffi.new('double[?]', #opts.dash, opts.dash), #opts.dash, 0) end
  C.cairo_move_to(cr, points[1][1], points[1][2])
  for i = 2, #points do C.cairo_line_to(cr, points[i][1], points[i][2]) end
  C.cairo_stroke(cr)
  C.cairo_restore(cr)
end

-- fig:rect(x, y, w, h, colour[, stroke]) -- a filled rectangle (stroke = {colour, width}: also outlined)
function Figure:rect(x, y, w, h, colour, stroke)
  local cr = self.cr
  C.cairo_rectangle(cr, x, y, w, h)
  if colour then self:colour(colour); C.cairo_fill_preserve(cr) end
  if stroke then
    self:colour(stroke[1]); C.cairo_set_line_width(cr, stroke[2] or 1); C.cairo_stroke(cr)
  else
    C.cairo_new_path(cr)
  end
end

-- fig:image(rgb, x, y, scale) -- draw a u8 [H, W, 3] tensor with its top-left at (x, y), each pixel a
-- scale x scale square (nearest neighbour, so pixels stay pixels in every format)
function Figure:image(rgb, x, y, scale)
  local h, w = rgb:size(0), rgb:size(1)
  local stride = C.cairo_format_stride_for_width(M.FORMAT_RGB24, w)
  local buf = ffi.new('uint8_t[?]', stride * h)
  local src = rgb:contiguous():cpu()   -- pixels are read on the host
  local p = src:data()
  -- RGB24 is a native-endian 32-bit 0x00RRGGBB per pixel
  local px = ffi.cast('uint32_t*', buf)
  local row = stride / 4
  for i = 0, h - 1 do
    for j = 0, w - 1 do
      local k = (i * w + j) * 3
      px[i * row + j] = p[k] * 65536 + p[k + 1] * 256 + p[k + 2]
    end
  end
  local img = C.cairo_image_surface_create_for_data(buf, M.FORMAT_RGB24, w, h, stride)
  local cr = self.cr
  C.cairo_save(cr)
  C.cairo_translate(cr, x, y)
  C.cairo_scale(cr, scale or 1, scale or 1)
  C.cairo_set_source_surface(cr, img, 0, 0)
  C.cairo_pattern_set_filter(C.cairo_get_source(cr), M.FILTER_NEAREST)
  C.cairo_rectangle(cr, 0, 0, w, h)
  C.cairo_fill(cr)
  C.cairo_restore(cr)
  -- the recording surface keeps a snapshot of the pixels once the source is released
  C.cairo_surface_destroy(img)
  self._keep = self._keep or {}
  self._keep[#self._keep + 1] = buf
end

local FORMATS = {png = true, svg = true, pdf = true}

local critical do
  local ok, h = pcall(require, 'dama.host')
  critical = ok and type(h) == 'table' and h.critical or function(f, ...) return f(...) end
end

local function write_file(self, path, ext, scale)
  local tmp = string.format('%s.tmp.%d', path, C.getpid())   -- as train.write_atomic: stale ones are found by pid
  local out
  if ext == 'png' then
    out = C.cairo_image_surface_create(M.FORMAT_RGB24, math.ceil(self.width * scale), math.ceil(self.height * scale))
  elseif ext == 'svg' then
    out = C.cairo_svg_surface_create(tmp, self.width, self.height)
  else
    out = C.cairo_pdf_surface_create(tmp, self.width, self.height)
  end
  out = ffi.gc(out, C.cairo_surface_destroy)
  local cr = C.cairo_create(out)
  if ext == 'png' then C.cairo_scale(cr, scale, scale) end
  C.cairo_set_source_surface(cr, self.surface, 0, 0)
  C.cairo_paint(cr)
  local dst = C.cairo_status(cr)
  C.cairo_destroy(cr)
  if ext == 'png' then
    C.cairo_surface_flush(out)
    if dst == 0 then dst = C.cairo_surface_write_to_png(out, tmp) end
  end
  C.cairo_surface_finish(out)
  if dst == 0 then dst = C.cairo_surface_status(out) end
  ffi.gc(out, nil)
  C.cairo_surface_destroy(out)
  if dst ~= 0 then
    os.remove(tmp)
    error(status_error(string.format("plot: cannot write '%s'", path), dst), 0)
  end
  local ok, err = os.rename(tmp, path)
  if not ok then
    os.remove(tmp)
    error(string.format("plot: cannot write '%s': %s", path, err), 0)
  end
end

-- fig:save(path[, opts]) -> path: write the figure as PNG, SVG or PDF (by path's extension), atomically;
-- opts.scale: pixels per point in a PNG (default 1)
function Figure:save(path, opts)
  opts = opts or {}
  if type(path) ~= 'string' then error('plot: expected a file path, got ' .. type(path), 2) end
  local ext = (path:match('%.(%w+)$') or ''):lower()
  if not FORMATS[ext] then
    error(string.format("plot: '%s': unknown figure format '%s' (expected .png, .svg or .pdf)", path, ext), 2)
  end
  local st = C.cairo_status(self.cr)
  if st ~= 0 then error(status_error('plot: drawing ' .. path, st), 2) end
  -- the temporary and the rename run with Ctrl-C/SIGTERM held off (dama.host.critical), so an interrupt never
  -- leaves a '<path>.tmp.<pid>' behind; one left by kill -9 is removed by the next run in that folder
  local ok, err = pcall(critical, write_file, self, path, ext, opts.scale or 1)
  if not ok then error(err, 0) end   -- as raised: an interrupt stays 'interrupted'
  return path
end

M.Figure = Figure
return M
