#include "jobs/svg_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace trecvit::svg {
namespace {

constexpr double kW = 560, kH = 340, kL = 70, kR = 20, kT = 20, kB = 50;

std::string num(double v) {
  char buf[32];
  if (std::abs(v) < 1e-9) return "0";
  const double a = std::abs(v);
  if (a != 0 && (a >= 1e5 || a < 1e-2)) std::snprintf(buf, sizeof buf, "%.2g", v);
  else std::snprintf(buf, sizeof buf, a >= 100 ? "%.0f" : "%.3g", v);
  return buf;
}

// Linear (or log10) mapping of [lo, hi] onto [a, b] with "nice" ticks.
struct Axis {
  double lo, hi;
  bool log;
  double a, b;
  double map(double v) const {
    const double t = log ? (std::log10(v) - std::log10(lo)) / (std::log10(hi) - std::log10(lo)) : (v - lo) / (hi - lo);
    return a + t * (b - a);
  }
  std::vector<double> ticks() const {
    std::vector<double> t;
    if (log) {
      for (double p = std::floor(std::log10(lo)); p <= std::ceil(std::log10(hi)); ++p)
        for (double m : {1.0, 2.0, 5.0})
          if (const double v = m * std::pow(10, p); v >= lo && v <= hi) t.push_back(v);
      if (t.size() < 2) t = {lo * 1.2, std::sqrt(lo * hi), hi / 1.2};  // a narrow range: label it anyway
      return t;
    }
    const double raw = (hi - lo) / 5, mag = std::pow(10, std::floor(std::log10(raw)));
    const double step = raw / mag < 2 ? 2 * mag : raw / mag < 5 ? 5 * mag : 10 * mag;
    for (double v = std::ceil(lo / step) * step; v <= hi + 1e-12; v += step) t.push_back(v);
    return t;
  }
};

Axis axis(std::vector<double> v, bool log, double a, double b) {
  if (log) v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return !(x > 0); }), v.end());
  double lo = v.empty() ? 0 : *std::min_element(v.begin(), v.end()), hi = v.empty() ? 1 : *std::max_element(v.begin(), v.end());
  if (log) {
    if (v.empty()) lo = 1, hi = 10;
    lo /= 1.5, hi *= 1.5;
  } else {
    const double pad = hi > lo ? 0.08 * (hi - lo) : std::max(1e-3, 0.1 * std::abs(hi));
    lo -= pad, hi += pad;
  }
  return {lo, hi, log, a, b};
}

std::string frame(const Axis& x, const Axis& y, const std::string& xl, const std::string& yl) {
  std::ostringstream s;
  s << "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 " << kW << " " << kH << "' width='" << kW << "' height='" << kH
    << "' font-family='sans-serif' font-size='11'>";
  s << "<rect x='" << kL << "' y='" << kT << "' width='" << kW - kL - kR << "' height='" << kH - kT - kB
    << "' fill='#fafafa' stroke='#999'/>";
  for (double t : x.ticks())
    s << "<line x1='" << x.map(t) << "' x2='" << x.map(t) << "' y1='" << kT << "' y2='" << kH - kB
      << "' stroke='#e4e4e4'/><text x='" << x.map(t) << "' y='" << kH - kB + 14 << "' text-anchor='middle'>" << num(t) << "</text>";
  for (double t : y.ticks())
    s << "<line x1='" << kL << "' x2='" << kW - kR << "' y1='" << y.map(t) << "' y2='" << y.map(t)
      << "' stroke='#e4e4e4'/><text x='" << kL - 6 << "' y='" << y.map(t) + 4 << "' text-anchor='end'>" << num(t) << "</text>";
  s << "<text x='" << (kL + kW - kR) / 2 << "' y='" << kH - 12 << "' text-anchor='middle'>" << escape(xl) << "</text>";
  s << "<text transform='translate(16," << (kT + kH - kB) / 2 << ") rotate(-90)' text-anchor='middle'>" << escape(yl) << "</text>";
  return s.str();
}

}  // namespace

const char* color(size_t i) {
  static const char* p[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"};
  return p[i % 10];
}

std::string escape(const std::string& t) {
  std::string o;
  for (char c : t) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else if (c == '\'') o += "&#39;";
    else if (c == '"') o += "&quot;";
    else o += c;
  }
  return o;
}

std::string scatter(const std::vector<Point>& pts, const std::string& xl, const std::string& yl, bool log_x) {
  std::vector<double> xs, ys;
  for (const auto& p : pts) {
    if (!std::isfinite(p.y) || !std::isfinite(p.x)) continue;
    xs.push_back(p.x);
    ys.push_back(p.y - p.err);
    ys.push_back(p.y + p.err);
  }
  const Axis x = axis(xs, log_x, kL, kW - kR), y = axis(ys, false, kH - kB, kT);
  std::ostringstream s;
  s << frame(x, y, xl, yl);
  for (size_t i = 0; i < pts.size(); ++i) {
    const auto& p = pts[i];
    if (!std::isfinite(p.y) || !std::isfinite(p.x)) continue;
    const double cx = x.map(p.x), cy = y.map(p.y);
    if (p.err > 0)
      s << "<line x1='" << cx << "' x2='" << cx << "' y1='" << y.map(p.y - p.err) << "' y2='" << y.map(p.y + p.err)
        << "' stroke='" << color(i) << "' stroke-width='2'/>";
    s << "<circle cx='" << cx << "' cy='" << cy << "' r='5' fill='" << color(i) << "' fill-opacity='0.85'><title>"
      << escape(p.label) << "</title></circle>";
  }
  return s.str() + "</svg>";
}

std::string lines(const std::vector<Series>& series, const std::string& xl, const std::string& yl) {
  std::vector<double> xs, ys;
  for (const auto& s : series)
    for (const auto& [a, b] : s.points) xs.push_back(a), ys.push_back(b);
  const Axis x = axis(xs, false, kL, kW - kR), y = axis(ys, false, kH - kB, kT);
  std::ostringstream s;
  s << frame(x, y, xl, yl);
  for (size_t i = 0; i < series.size(); ++i) {
    if (series[i].points.empty()) continue;  // its colour stays reserved, so colours match the other plots
    s << "<polyline fill='none' stroke='" << color(i) << "' stroke-width='1.6' points='";
    for (const auto& [a, b] : series[i].points) s << x.map(a) << "," << y.map(b) << " ";
    s << "'><title>" << escape(series[i].name) << "</title></polyline>";
    if (series[i].points.size() < 3)
      for (const auto& [a, b] : series[i].points)
        s << "<circle cx='" << x.map(a) << "' cy='" << y.map(b) << "' r='3' fill='" << color(i) << "'/>";
    s << "<rect x='" << kW - kR - 150 << "' y='" << kT + 8 + 14 * i << "' width='10' height='10' fill='" << color(i)
      << "'/><text x='" << kW - kR - 136 << "' y='" << kT + 17 + 14 * i << "'>" << escape(series[i].name) << "</text>";
  }
  return s.str() + "</svg>";
}

std::string bars(const std::vector<double>& raw, const std::vector<std::string>& labels, const std::string& xl,
                 const std::string& yl, bool log_y) {
  // Log y plots log10(1 + v), so empty bins sit at 0 and every non-empty one shows; small
  // counts stay linear.
  log_y = log_y && !raw.empty() && *std::max_element(raw.begin(), raw.end()) >= 20;
  std::string yl_shown = yl;
  if (!log_y && yl_shown.size() > 12 && yl_shown.compare(yl_shown.size() - 12, 12, " (log scale)") == 0)
    yl_shown.resize(yl_shown.size() - 12);
  std::vector<double> values;
  for (double v : raw) values.push_back(log_y ? std::log10(1 + std::max(0.0, v)) : v);
  std::vector<double> ys(values);
  ys.push_back(0);
  Axis y = axis(ys, false, kH - kB, kT);
  if (log_y) y.lo = 0;
  const Axis x{0, static_cast<double>(std::max<size_t>(1, values.size())), false, kL, kW - kR};
  std::ostringstream s;
  s << "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 " << kW << " " << kH << "' width='" << kW << "' height='" << kH
    << "' font-family='sans-serif' font-size='11'>";
  s << "<rect x='" << kL << "' y='" << kT << "' width='" << kW - kL - kR << "' height='" << kH - kT - kB << "' fill='#fafafa' stroke='#999'/>";
  std::vector<double> ticks = y.ticks();
  if (log_y) {
    ticks.clear();
    for (double p = 0; p <= y.hi; ++p) ticks.push_back(std::log10(1 + std::pow(10, p) - (p == 0 ? 1 : 0)));
  }
  for (double t : ticks)
    s << "<line x1='" << kL << "' x2='" << kW - kR << "' y1='" << y.map(t) << "' y2='" << y.map(t)
      << "' stroke='#e4e4e4'/><text x='" << kL - 6 << "' y='" << y.map(t) + 4 << "' text-anchor='end'>"
      << num(log_y ? std::round(std::pow(10, t) - 1) : t) << "</text>";
  const double w = (x.b - x.a) / std::max<size_t>(1, values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    const double x0 = x.a + i * w + 0.15 * w, top = y.map(values[i]), base = y.map(std::max(0.0, y.lo));
    s << "<rect x='" << x0 << "' y='" << std::min(top, base) << "' width='" << 0.7 * w << "' height='" << std::abs(base - top)
      << "' fill='" << color(0) << "'><title>" << escape(labels[i]) << ": " << num(raw[i]) << "</title></rect>";
    if (values.size() <= 12 || i % 2 == 0)  // many bins: every other label, so they do not overlap
      s << "<text x='" << x0 + 0.35 * w << "' y='" << kH - kB + 14 << "' text-anchor='middle'>" << escape(labels[i]) << "</text>";
  }
  s << "<text x='" << (kL + kW - kR) / 2 << "' y='" << kH - 12 << "' text-anchor='middle'>" << escape(xl) << "</text>";
  s << "<text transform='translate(16," << (kT + kH - kB) / 2 << ") rotate(-90)' text-anchor='middle'>" << escape(yl_shown) << "</text>";
  return s.str() + "</svg>";
}

std::string heatmap(const std::vector<std::vector<int64_t>>& counts, const std::vector<std::string>& labels,
                    const std::string& row_label, const std::string& col_label) {
  const size_t n = counts.size();
  const double cell = n <= 12 ? 34 : std::max(6.0, 420.0 / double(std::max<size_t>(1, n)));
  size_t longest = 1;
  for (auto& l : labels) longest = std::max(longest, l.size());
  const double text = 6.2 * double(std::min<size_t>(longest, 40));  // labels past 40 characters are cut
  const double left = 24 + text, top = 20, size = cell * double(n), w = left + size + text * 0.5 + 20,
               h = top + size + text * 0.87 + 40;
  int64_t peak = 1;
  for (auto& row : counts)
    for (int64_t v : row) peak = std::max(peak, v);
  std::ostringstream s;
  s << "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 " << w << " " << h << "' width='" << w << "' height='" << h
    << "' font-family='sans-serif' font-size='11'>";
  for (size_t r = 0; r < n; ++r) {
    const std::string full = r < labels.size() ? labels[r] : std::to_string(r);
    const std::string name = full.size() > 40 ? full.substr(0, 39) + "…" : full;
    s << "<text x='" << left - 6 << "' y='" << top + cell * (r + 0.5) + 4 << "' text-anchor='end'>" << escape(name) << "</text>";
    s << "<text transform='translate(" << left + cell * (r + 0.5) + 4 << "," << top + size + 6
      << ") rotate(60)'>" << escape(name) << "</text>";
    for (size_t c = 0; c < counts[r].size() && c < n; ++c) {
      const int64_t v = counts[r][c];
      const double t = std::sqrt(double(v) / double(peak));  // sqrt: small off-diagonal counts stay visible
      const int shade = int(std::lround(255 - 200 * t));
      s << "<rect x='" << left + cell * c << "' y='" << top + cell * r << "' width='" << cell << "' height='" << cell
        << "' fill='rgb(" << shade << "," << shade << ",255)' stroke='#fff'><title>" << escape(full) << " -> "
        << escape(c < labels.size() ? labels[c] : std::to_string(c)) << ": " << v << "</title></rect>";
      if (n <= 12 && v > 0)
        s << "<text x='" << left + cell * (c + 0.5) << "' y='" << top + cell * (r + 0.5) + 4 << "' text-anchor='middle' fill='"
          << (t > 0.6 ? "#fff" : "#222") << "'>" << v << "</text>";
    }
  }
  s << "<text x='" << left + size / 2 << "' y='" << h - 6 << "' text-anchor='middle'>" << escape(col_label) << "</text>";
  s << "<text transform='translate(12," << top + size / 2 << ") rotate(-90)' text-anchor='middle'>" << escape(row_label)
    << "</text></svg>";
  return s.str();
}

std::string format(const char* printf_format, double value) {
  char b[64];
  std::snprintf(b, sizeof b, printf_format, value);
  return b;
}

}  // namespace trecvit::svg
