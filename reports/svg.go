package reports

import (
	"fmt"
	"html/template"
	"math"
	"strings"
)

// Chart is a line or scatter chart rendered as inline SVG: no script, no network, readable in
// any browser and in a saved file.
type Chart struct {
	Title          string
	XLabel, YLabel string
	Series         []Series
	// LogY plots Y on a log10 scale (values <= 0 are left out).
	LogY bool
	// Width and Height in CSS pixels (defaults 720 x 260).
	Width, Height int
}

// Series is one line (or set of points) of a chart.
type Series struct {
	Name   string
	X, Y   []float64
	Points bool // markers only, no line
	Dashed bool
	Color  string // CSS colour; "" picks from the palette
}

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"}

const (
	marginLeft, marginRight, marginTop, marginBottom = 64, 16, 28, 40
	legendRow                                        = 16
)

// SVG renders the chart. The svg element carries class "chart" and data-points (the number of
// points drawn), which the report's render check reads.
func (c Chart) SVG() template.HTML {
	w, h := c.Width, c.Height
	if w == 0 {
		w = 720
	}
	if h == 0 {
		h = 260
	}
	perRow := 4
	for _, s := range c.Series {
		if len(s.Name) > 22 {
			perRow = 2
		}
	}
	legendRows := (len(c.Series) + perRow - 1) / perRow
	ph := h - marginTop - marginBottom - legendRows*legendRow
	pw := w - marginLeft - marginRight
	xmin, xmax, ymin, ymax := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	fy := func(v float64) (float64, bool) {
		if c.LogY {
			if v <= 0 {
				return 0, false
			}
			return math.Log10(v), true
		}
		return v, !math.IsNaN(v) && !math.IsInf(v, 0)
	}
	for _, s := range c.Series {
		for i := range min(len(s.X), len(s.Y)) {
			y, ok := fy(s.Y[i])
			if !ok || math.IsNaN(s.X[i]) {
				continue
			}
			xmin, xmax = math.Min(xmin, s.X[i]), math.Max(xmax, s.X[i])
			ymin, ymax = math.Min(ymin, y), math.Max(ymax, y)
		}
	}
	var b strings.Builder
	points := 0
	if math.IsInf(xmin, 1) { // nothing to draw
		xmin, xmax, ymin, ymax = 0, 1, 0, 1
	}
	if !c.LogY && ymin > 0 {
		ymin = 0 // rates, losses and delays read best from zero
	}
	if xmax == xmin {
		xmax = xmin + 1
	}
	if ymax == ymin {
		ymax = ymin + 1
	}
	yt := niceTicks(ymin, ymax, 5)
	if !c.LogY {
		ymin, ymax = math.Min(ymin, yt[0]), math.Max(ymax, yt[len(yt)-1])
	}
	sx := func(x float64) float64 { return float64(marginLeft) + (x-xmin)/(xmax-xmin)*float64(pw) }
	sy := func(y float64) float64 { return float64(marginTop+ph) - (y-ymin)/(ymax-ymin)*float64(ph) }

	fmt.Fprintf(&b, `<text x="%d" y="16" class="title">%s</text>`, marginLeft, template.HTMLEscapeString(c.Title))
	// Axes, grid and ticks.
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" class="plot"/>`, marginLeft, marginTop, pw, ph)
	for _, t := range yt {
		if t < ymin || t > ymax {
			continue
		}
		y := sy(t)
		label := formatTick(t)
		if c.LogY {
			label = formatTick(math.Pow(10, t))
		}
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" class="grid"/><text x="%d" y="%.1f" class="ytick">%s</text>`,
			marginLeft, marginLeft+pw, y, y, marginLeft-4, y+4, label)
	}
	for _, t := range niceTicks(xmin, xmax, 8) {
		if t < xmin || t > xmax {
			continue
		}
		x := sx(t)
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" class="grid"/><text x="%.1f" y="%d" class="xtick">%s</text>`,
			x, x, marginTop, marginTop+ph, x, marginTop+ph+14, formatTick(t))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" class="xlabel">%s</text>`, marginLeft+pw/2, marginTop+ph+30, template.HTMLEscapeString(c.XLabel))
	fmt.Fprintf(&b, `<text x="14" y="%d" class="ylabel" transform="rotate(-90 14 %d)">%s</text>`, marginTop+ph/2, marginTop+ph/2, template.HTMLEscapeString(c.YLabel))
	// Data.
	for i, s := range c.Series {
		color := s.Color
		if color == "" {
			color = palette[i%len(palette)]
		}
		var pts []string
		for j := range min(len(s.X), len(s.Y)) {
			y, ok := fy(s.Y[j])
			if !ok || math.IsNaN(s.X[j]) {
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", sx(s.X[j]), sy(y)))
		}
		points += len(pts)
		name := template.HTMLEscapeString(s.Name)
		switch {
		case s.Points:
			fmt.Fprintf(&b, `<g class="series" data-name="%s" fill="%s">`, name, color)
			for _, p := range pts {
				xy := strings.SplitN(p, ",", 2)
				fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="3"/>`, xy[0], xy[1])
			}
			b.WriteString(`</g>`)
		case len(pts) > 0:
			dash := ""
			if s.Dashed {
				dash = ` stroke-dasharray="5 3"`
			}
			fmt.Fprintf(&b, `<polyline class="series" data-name="%s" fill="none" stroke="%s" stroke-width="1.5"%s points="%s"/>`,
				name, color, dash, strings.Join(pts, " "))
		}
		// Legend: perRow entries a row under the plot.
		lx := marginLeft + (i%perRow)*(pw/perRow)
		ly := marginTop + ph + 44 + (i/perRow)*legendRow
		if s.Points {
			fmt.Fprintf(&b, `<circle cx="%d" cy="%d" r="3" fill="%s"/>`, lx+9, ly-4, color)
		} else {
			fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="2"/>`, lx, lx+18, ly-4, ly-4, color)
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" class="legend">%s</text>`, lx+24, ly, name)
	}
	return template.HTML(fmt.Sprintf(`<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" data-points="%d" role="img" aria-label="%s">%s</svg>`,
		w, h+legendRow, w, h+legendRow, points, template.HTMLEscapeString(c.Title), b.String()))
}

// niceTicks returns about n round tick values covering [lo, hi].
func niceTicks(lo, hi float64, n int) []float64 {
	span := hi - lo
	if span <= 0 || math.IsNaN(span) || math.IsInf(span, 0) {
		return []float64{lo}
	}
	raw := span / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var out []float64
	for t := math.Floor(lo/step) * step; t <= hi+step/2; t += step {
		out = append(out, math.Round(t/step)*step)
	}
	return out
}

func formatTick(v float64) string {
	a := math.Abs(v)
	switch {
	case a == 0:
		return "0"
	case a >= 1e6:
		return trimZeros(fmt.Sprintf("%.2f", v/1e6)) + "M"
	case a >= 1e3:
		return trimZeros(fmt.Sprintf("%.2f", v/1e3)) + "k"
	case a >= 1:
		return trimZeros(fmt.Sprintf("%.2f", v))
	default:
		return trimZeros(fmt.Sprintf("%.4f", v))
	}
}

func trimZeros(s string) string {
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}
