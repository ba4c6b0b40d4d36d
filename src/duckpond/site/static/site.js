/* pond site: a series page's chart (BokehJS), tier choice on zoom, view links, CSV.
 *
 * Data files are <script>s that call pondSite.chunk(key, data), so pages work from file://
 * (where fetch() is refused). For a visible window the finest tier that keeps it within the
 * target number of points is shown; each tier is cut into chunks of target x resolution, so
 * a window needs at most two files (the coarsest tier is one file). */
(function () {
  "use strict";
  var DAY = 86400000;
  var PRESETS = { "1D": DAY, "1W": 7 * DAY, "1M": 30 * DAY, "1Y": 365 * DAY };
  var S = (window.pondSite = {
    chunks: {}, // key -> raw data as loaded
    decoded: {}, // key -> {t: Float64Array, c: {name: Float64Array}}
    loaded: [], // every data file requested, in order
    views: [], // {tier, files, from, to} for every view shown
    errors: [],
    lines: {}, // charted column -> {panel, color, renderers} (tests read it)
    drawn: false,
    firstDrawnMs: null,
  });

  window.addEventListener("error", function (e) { report(e.message || String(e)); });
  window.addEventListener("unhandledrejection", function (e) { report(String(e.reason)); });

  function report(msg) {
    S.errors.push(msg);
    var el = document.getElementById("errors");
    if (el) { el.hidden = false; el.textContent += msg + "\n"; }
  }

  S.chunk = function (key, data) { S.chunks[key] = data; };

  function loadScript(src) {
    return new Promise(function (resolve, reject) {
      var el = document.createElement("script");
      el.src = src;
      el.onload = function () { resolve(); };
      el.onerror = function () { reject(new Error("cannot load " + src)); };
      document.head.appendChild(el);
    });
  }

  // One base64 string per chunk, each column at its offset in it (site/encode.py).
  function bytesOf(b64) {
    if (Uint8Array.fromBase64) return Uint8Array.fromBase64(b64);
    var bin = atob(b64), bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return bytes;
  }

  var WIDTH = { 1: Uint8Array, 2: Uint16Array, 4: Uint32Array };

  function column(buf, h, n) {
    var out = new Float64Array(n), i;
    if (h.k === "c") return out.fill(h.v === null ? NaN : h.v);
    if (h.k === "d") return new Float64Array(buf, h.o, n);
    if (h.k === "f") { out.set(new Float32Array(buf, h.o, n)); return out; }
    var u = new WIDTH[h.w](buf, h.o, n);
    if (h.k === "t") {
      var t = h.t0;
      for (i = 0; i < n; i++) { t += h.g * u[i]; out[i] = t; }
      return out;
    }
    var p = Math.pow(10, h.s), z = h.z === undefined ? -1 : h.z, b = h.b;
    if (h.s === 0) for (i = 0; i < n; i++) out[i] = u[i] === z ? NaN : b + u[i];
    else for (i = 0; i < n; i++) out[i] = u[i] === z ? NaN : (b + u[i]) / p;
    return out;
  }

  function decode(file) {
    var raw = S.chunks[file];
    if (!raw) throw new Error("data file " + file + " registered nothing");
    var buf = bytesOf(raw.b).buffer, c = {};
    Object.keys(raw.c).forEach(function (name) { c[name] = column(buf, raw.c[name], raw.n); });
    S.decoded[file] = { t: column(buf, raw.t, raw.n), c: c };
    delete S.chunks[file];
    return S.decoded[file];
  }

  function getChunk(file) {
    if (S.decoded[file]) return Promise.resolve(S.decoded[file]);
    if (S.chunks[file]) return Promise.resolve(decode(file)); // loaded with the page
    S.loaded.push(file);
    return loadScript("../" + file).then(function () {
      return decode(file);
    });
  }

  // The tier for a window [a, b] (ms, UTC): the finest that keeps it within target points.
  function chooseTier(m, a, b) {
    for (var i = 0; i < m.tiers.length; i++) {
      if ((b - a) / m.tiers[i].res_ms <= m.target_points) return m.tiers[i];
    }
    return m.tiers[m.tiers.length - 1];
  }

  function filesFor(tier, a, b) {
    if (!tier.chunk_ms) return tier.chunks.map(function (c) { return c.file; });
    var k0 = Math.floor(a / tier.chunk_ms), k1 = Math.floor(b / tier.chunk_ms);
    return tier.chunks.filter(function (c) { return c.k >= k0 && c.k <= k1; })
      .map(function (c) { return c.file; });
  }

  function iso(ms) { return new Date(ms).toISOString(); }

  function chartWidth() {
    return Math.max(document.getElementById("chart").clientWidth, 300);
  }

  S.start = function () {
    performance.mark("pond-begin");
    var m = JSON.parse(document.getElementById("manifest").textContent);
    S.manifest = m;
    var viewer = m.time_zone === "viewer";
    // Bokeh draws times as UTC; the viewer's zone is shown by shifting each time by its offset.
    function shift(ms) { return viewer ? ms - new Date(ms).getTimezoneOffset() * 60000 : ms; }
    function unshift(x) { return viewer ? x + new Date(x).getTimezoneOffset() * 60000 : x; }
    var first = m.first_ms, last = m.last_ms;
    var pad = Math.max((last - first) * 0.01, 1000);

    function presetRange(p) {
      if (p === "All" || !PRESETS[p]) return [first - pad, last + pad];
      return [last - PRESETS[p], last];
    }
    var initial = presetRange(m.default_range);
    var h = parseHash();
    if (h) initial = h;

    var cols = { x: [] };
    m.bases.forEach(function (b, i) { cols["m" + i] = []; cols["lo" + i] = []; cols["hi" + i] = []; });
    var source = new Bokeh.ColumnDataSource({ data: cols });
    var xr = new Bokeh.Range1d({ start: shift(initial[0]), end: shift(initial[1]) });
    var panels = m.panels, many = panels.length > 1;
    // Every panel's plot area starts and ends at the same x (they share the time axis): the
    // same borders, wide enough for the widest legend (outside the plot, on the right).
    var longest = 0;
    m.bases.forEach(function (b) { longest = Math.max(longest, b.length); });
    var legendRight = m.bases.length > 1 ? 64 + 7 * Math.min(longest, 40) : 10;
    // The first frame shows the first panel's lines and axes only: its tools, min/max bands
    // and toolbar are added after it is drawn (`afterFirst`), and the other panels are built
    // then, one a frame. Each of these costs BokehJS model and view work before its first
    // paint (measured: bench 18c/18c'; docs/site.md "Page load"). Each step of `afterFirst`
    // waits until BokehJS has built the views of the one before: two changes of a shown
    // plot's renderers in flight at once build the same views twice (a toolbar drawn twice,
    // stacked, or "cannot find a view for ToolbarPanel").
    var afterFirst = [];
    var plots = [panelPlot(panels[0], 0)];
    // One document, a root per panel (a page of 6 panels drew its first chart 2.5x later as
    // a column of all six, measured).
    var doc = new Bokeh.Document();
    doc.add_root(plots[0]);

    function panelPlot(p, pi) {
      var brush = new Bokeh.BoxZoomTool({ dimensions: "width" });
      var wheel = new Bokeh.WheelZoomTool({ dimensions: "width" });
      var tools = [brush, new Bokeh.PanTool({ dimensions: "width" }), wheel, new Bokeh.ResetTool()];
      var plot = Bokeh.Plotting.figure({
        x_axis_type: "datetime",
        x_range: xr,
        // a fixed width renders ~30 % sooner than sizing_mode "stretch_width" (measured);
        // the window's resize handler below keeps it fitting the page
        width: chartWidth(),
        height: many ? 240 : 420,
        tools: pi === 0 ? [] : tools,
        // one toolbar for the page (the tools of every panel work without one), after the
        // first frame: drawing it first costs ~40 % of the first render (measured); its
        // space is kept (min_border_top) so nothing moves when it comes
        toolbar_location: null,
        min_border_top: pi === 0 ? 30 : 5,
        y_axis_label: p.unit || null,
        title: many ? p.title : null,
        min_border_left: 70,
        min_border_right: legendRight,
      });
      // drag = brush (zoom to the dragged span); the wheel zooms too (a phone pinches)
      if (pi === 0) {
        afterFirst.push({
          run: function () {
            plot.toolbar.setv({ tools: tools, active_drag: brush, active_scroll: wheel });
          },
          done: function (view) { return view.renderer_views.has(brush.overlay); },
        });
      } else {
        plot.toolbar.active_drag = brush;
        plot.toolbar.active_scroll = wheel;
      }
      var items = [], bands = [];
      p.lines.forEach(function (b, li) {
        var i = m.bases.indexOf(b), color = p.colors[li], drawn = [];
        var envelope = m.tiers.some(function (t) { return t.lines[b] && t.lines[b].lo; });
        if (envelope && pi === 0) bands.push(addBand);
        drawn.push(plot.line({ field: "x" }, { field: "m" + i },
          { source: source, line_color: color, line_width: 1.5 }));
        var item = new Bokeh.LegendItem({ label: { value: b }, renderers: drawn });
        items.push(item);
        S.lines[b] = { panel: pi, color: color, renderers: drawn }; // [band, line] once drawn
        function addBand() {
          // under the line (level "underlay") though added after it
          drawn.unshift(plot.varea({ x: { field: "x" }, y1: { field: "lo" + i },
            y2: { field: "hi" + i }, source: source, fill_color: color, fill_alpha: 0.2,
            level: "underlay" }));
          item.renderers = drawn.slice();
        }
        if (envelope && pi > 0) addBand();
      });
      if (pi === 0) {
        afterFirst.push({
          run: function () { bands.forEach(function (f) { f(); }); },
          done: function (view) {
            return p.lines.every(function (b) {
              return S.lines[b].renderers.every(function (r) { return view.renderer_views.has(r); });
            });
          },
        }, {
          // the page's one toolbar (the tools of every panel work without one)
          run: function () { plot.toolbar_location = "above"; },
          done: function (view) {
            return Array.from(view.renderer_views.keys()).some(function (r) {
              return r.type === "ToolbarPanel";
            });
          },
        });
      }
      if (m.bases.length > 1) {
        // a click on a name hides its line (and band); outside the plot, never over the data
        plot.add_layout(new Bokeh.Legend({ items: items, click_policy: "hide",
          location: "top_left", label_text_font_size: "12px", spacing: 2 }), "right");
      }
      return plot;
    }

    var current = null, pending = null, seq = 0, loading = 0;

    function show(a, b) {
      var tier = chooseTier(m, a, b);
      var files = filesFor(tier, a, b);
      var my = ++seq;
      loading++;
      return Promise.all(files.map(getChunk)).then(function (parts) {
        if (my !== seq) return; // a newer view superseded this one
        var n = 0;
        parts.forEach(function (p) { n += p.t.length; });
        var data = { x: new Float64Array(n) };
        m.bases.forEach(function (b, i) {
          data["m" + i] = new Float64Array(n).fill(NaN);
          data["lo" + i] = new Float64Array(n).fill(NaN);
          data["hi" + i] = new Float64Array(n).fill(NaN);
        });
        var off = 0;
        parts.forEach(function (p) {
          for (var j = 0; j < p.t.length; j++) data.x[off + j] = shift(p.t[j]);
          m.bases.forEach(function (b, i) {
            var line = tier.lines[b];
            if (!line) return;
            data["m" + i].set(p.c[line.mid], off);
            if (line.lo) { data["lo" + i].set(p.c[line.lo], off); data["hi" + i].set(p.c[line.hi], off); }
          });
          off += p.t.length;
        });
        source.data = data;
        current = { tier: tier, files: files, parts: parts, from: a, to: b };
        S.views.push({ tier: tier.name, files: files.slice(), from: a, to: b });
        S.view = current;
        updateInfo();
      }).finally(function () { loading--; });
    }

    function visibleRows() {
      if (!current) return [];
      var rows = [], a = current.from, b = current.to, names = current.tier.columns;
      current.parts.forEach(function (p) {
        for (var j = 0; j < p.t.length; j++) {
          var t = p.t[j];
          if (t < a || t > b) continue;
          rows.push([t].concat(names.map(function (n) { return p.c[n][j]; })));
        }
      });
      return rows;
    }

    S.csv = function () {
      if (!current) return "";
      var lines = [[m.time_column].concat(current.tier.columns).map(csvCell).join(",")];
      visibleRows().forEach(function (r) {
        lines.push([iso(r[0])].concat(r.slice(1).map(function (v) {
          return isNaN(v) ? "" : String(v);
        })).map(csvCell).join(","));
      });
      return lines.join("\n") + "\n";
    };

    function csvCell(v) {
      v = String(v);
      return /[",\n]/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v;
    }

    function updateInfo() {
      var a = current.from, b = current.to;
      var hash = "#from=" + iso(a) + "&to=" + iso(b);
      document.getElementById("view-link").setAttribute("href", hash);
      try { history.replaceState(null, "", hash); } catch (e) { /* some file:// setups */ }
      document.getElementById("info").textContent =
        iso(a).slice(0, 16).replace("T", " ") + " to " + iso(b).slice(0, 16).replace("T", " ") +
        " UTC · tier " + current.tier.name + " · " + visibleRows().length + " points in view · " +
        current.files.length + " data file(s)";
    }

    function onRange() {
      if (pending) clearTimeout(pending);
      pending = setTimeout(function () {
        pending = null;
        show(unshift(xr.start), unshift(xr.end)).catch(function (e) { report(String(e)); });
      }, 120);
    }

    function setRange(r) { xr.setv({ start: shift(r[0]), end: shift(r[1]) }); }

    document.querySelectorAll("button[data-preset]").forEach(function (btn) {
      btn.addEventListener("click", function () {
        var p = btn.getAttribute("data-preset");
        setRange(p === "reset" ? initial : presetRange(p));
      });
    });
    document.getElementById("csv").addEventListener("click", function () {
      var blob = new Blob([S.csv()], { type: "text/csv" });
      var a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = m.slug + "-" + current.tier.name + ".csv";
      document.body.appendChild(a);
      a.click();
      setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
    });

    var resizing = null;
    window.addEventListener("resize", function () {
      if (resizing) clearTimeout(resizing);
      resizing = setTimeout(function () {
        plots.forEach(function (plot) { plot.width = chartWidth(); });
      }, 150);
    });

    S.setRange = setRange;
    S.plots = plots;
    S.visibleRows = visibleRows;
    // no range change waiting to be shown and no view loading (tests wait for it)
    S.idle = function () { return pending === null && loading === 0; };
    performance.mark("pond-start");
    show(initial[0], initial[1]).then(function () {
      performance.mark("pond-data");
      return Bokeh.Plotting.show(doc, "#chart");
    }).then(function () {
      performance.mark("pond-shown");
      xr.change.connect(onRange);
      requestAnimationFrame(function () {
        S.firstDrawnMs = performance.now();
        performance.mark("pond-drawn");
        var next = 1, step = -1;
        (function more() {
          if (next < panels.length) {
            plots.push(panelPlot(panels[next], next));
            doc.add_root(plots[next++]);
          }
          if (step < afterFirst.length && (step < 0 || afterFirst[step].done(Bokeh.index[plots[0].id]))) {
            if (++step < afterFirst.length) afterFirst[step].run();
          }
          if (next === panels.length && step === afterFirst.length &&
              plots.every(function (p) { return Bokeh.index[p.id]; })) {
            S.drawn = true; // every panel drawn (tests wait for it)
            document.body.setAttribute("data-drawn", "1");
          } else {
            requestAnimationFrame(more);
          }
        })();
      });
    }).catch(function (e) { report(String(e && e.stack || e)); });

    function parseHash() {
      var mm = /from=([^&]+)&to=([^&]+)/.exec(location.hash);
      if (!mm) return null;
      var a = Date.parse(decodeURIComponent(mm[1])), b = Date.parse(decodeURIComponent(mm[2]));
      return isNaN(a) || isNaN(b) || b <= a ? null : [a, b];
    }
  };
})();
