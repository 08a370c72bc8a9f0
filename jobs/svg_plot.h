#pragma once
// Small inline-SVG charts for the HTML reports: a scatter with error bars, line series, bars.
#include <cstdint>
#include <string>
#include <vector>

namespace trecvit::svg {

struct Point {
  double x, y, err = 0;  // err: half-height of the error bar (0: none)
  std::string label;
};
struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;
};

std::string scatter(const std::vector<Point>& points, const std::string& x_label, const std::string& y_label, bool log_x);
std::string lines(const std::vector<Series>& series, const std::string& x_label, const std::string& y_label);
std::string bars(const std::vector<double>& values, const std::vector<std::string>& labels, const std::string& x_label,
                 const std::string& y_label, bool log_y = false);
// A count matrix as shaded cells (rows: true class, columns: predicted), labelled, each cell's
// count as its tooltip and, when the matrix is small, as text.
std::string heatmap(const std::vector<std::vector<int64_t>>& counts, const std::vector<std::string>& labels,
                    const std::string& row_label, const std::string& col_label);
std::string escape(const std::string& text);  // for HTML text and attributes
std::string format(const char* printf_format, double value);  // one number, e.g. format("%.2f", v), for report text
const char* color(size_t i);                   // a qualitative palette

}  // namespace trecvit::svg
