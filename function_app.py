"""Azure Functions entry points. Thin on purpose: each trigger hands its input to one core
function in ``shared.service`` and maps the outcome to its binding. No export logic lives here.
"""

import logging

import azure.functions as func

from shared import service

app = func.FunctionApp()


@app.timer_trigger(
    arg_name="timer",
    schedule="%EXPORT_SCHEDULE%",
    run_on_startup=False,
    use_monitor=True,
)
def scheduled_export(timer: func.TimerRequest) -> None:
    records = service.on_schedule(service.app_edges(), past_due=timer.past_due)
    for record in records:
        logging.info("scheduled export %s of %s: %s", record.run_id, record.destination, record.status)
