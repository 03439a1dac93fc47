/* Dashboards: draw every widget's chart from the JSON the server embedded beside it.
 *
 * Each chart is a <div data-ff-chart="ID"> with <script type="application/json" id="ID">
 * holding {kind, option, links, texts}: the ECharts option, the list-page URL of each
 * data item ("series:index" -> URL; a click goes there) and the item's value as the
 * reader's locale writes it (shown in tooltips and labels). No inline script runs
 * (the page's CSP allows only files from this site); the numbers are also in a table
 * beside each chart for readers without JavaScript.
 */
(function () {
  "use strict";

  function key(params) {
    return (params.seriesIndex || 0) + ":" + (params.dataIndex || 0);
  }

  function itemText(spec, params) {
    var text = spec.texts[key(params)];
    return text === undefined ? String(params.value) : text;
  }

  // Tooltips are drawn in the canvas (renderMode richText): an HTML tooltip would insert
  // markup with style attributes, which the page's CSP (style-src 'self') refuses.
  function withFormatters(spec) {
    var option = spec.option;
    if (option.tooltip) option.tooltip.renderMode = "richText";
    if (spec.kind === "bar" || spec.kind === "line") {
      option.tooltip.formatter = function (items) {
        var lines = [items.length ? items[0].axisValueLabel : ""];
        items.forEach(function (p) {
          if (p.value === null || p.value === undefined) return;
          lines.push(p.marker + p.seriesName + ": " + itemText(spec, p));
        });
        return lines.join("\n");
      };
    } else if (spec.kind === "pie" || spec.kind === "funnel") {
      option.tooltip.formatter = function (p) {
        return p.marker + p.name + ": " + itemText(spec, p) +
          (spec.kind === "pie" ? " (" + p.percent + "%)" : "");
      };
      if (spec.kind === "funnel") {
        option.series[0].label.formatter = function (p) {
          return p.name + "\n" + itemText(spec, p);
        };
      }
    } else if (spec.kind === "gauge") {
      option.series[0].detail.formatter = function () {
        return spec.texts["0:0"];
      };
    }
    return option;
  }

  function draw(element) {
    var source = document.getElementById(element.getAttribute("data-ff-chart"));
    if (!source || typeof echarts === "undefined") return null;
    var spec = JSON.parse(source.textContent);
    var chart = echarts.init(element, null, { renderer: "canvas" });
    chart.setOption(withFormatters(spec));
    chart.on("click", function (params) {
      var url = spec.links[key(params)];
      if (url) window.location.assign(url);
    });
    chart.getZr().on("mousemove", function (event) {
      element.style.cursor = event.target ? "pointer" : "default";
    });
    element.classList.add("ff-chart-drawn");
    return chart;
  }

  function start() {
    var charts = [];
    document.querySelectorAll("[data-ff-chart]").forEach(function (element) {
      var chart = draw(element);
      if (chart) charts.push(chart);
    });
    var pending = null;
    window.addEventListener("resize", function () {
      if (pending) window.clearTimeout(pending);
      pending = window.setTimeout(function () {
        charts.forEach(function (chart) { chart.resize(); });
      }, 100);
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
