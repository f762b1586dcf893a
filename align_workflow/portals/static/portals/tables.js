// Case tables (and the support page's counts) become stacked cards on a phone (portals.css, "Phones"): each cell is headed
// by its column's name, copied here from the table head into data-label. A new column needs
// nothing more than its <th>.
(function () {
  "use strict";
  document.querySelectorAll("table.cases, table.counts").forEach(function (table) {
    var heads = Array.prototype.map.call(table.querySelectorAll("thead th"), function (th) {
      return th.textContent.trim();
    });
    table.querySelectorAll("tbody tr").forEach(function (row) {
      Array.prototype.forEach.call(row.children, function (cell, i) {
        if (!cell.hasAttribute("data-label")) cell.setAttribute("data-label", heads[i] || "");
      });
    });
  });
})();
