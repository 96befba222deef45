"""One module per section of the sharing report; ``reports.service.build_report`` assembles them."""
