"""The ``dso-nas`` subcommands as a table (:data:`COMMANDS`), one :class:`Command` each.

* :mod:`~dso_nas.commands.table` - what a command is, and the table;
* :mod:`~dso_nas.commands.parse` - the command line read from the table;
* :mod:`~dso_nas.commands.entry` - the process settings and the ending that ``dso-nas`` and
  the scripts under ``tools/`` share;
* the commands: :mod:`~dso_nas.commands.training` (run, search, retrain, evaluate),
  :mod:`~dso_nas.commands.nets` (info, export, latency), :mod:`~dso_nas.commands.folders`
  (report, plot), :mod:`~dso_nas.commands.pack`, :mod:`~dso_nas.commands.launch`,
  :mod:`~dso_nas.commands.doctor`, :mod:`~dso_nas.commands.baseline`,
  :mod:`~dso_nas.commands.study`, :mod:`~dso_nas.commands.search_check`,
  :mod:`~dso_nas.commands.lambda_noise`, :mod:`~dso_nas.commands.genotype`
  (import-genotype, export-genotype).

A new subcommand is a ``Command`` in one of these modules (or a new one) and one ``register``
line below; ``dso-nas --help`` lists the commands in the order they are registered. Every
module here is light to import: a command's work imports what it needs (MXNet) when it runs.
"""
from . import baseline, doctor, folders, genotype, lambda_noise, launch, nets, pack, search_check, study, training
from .table import COMMANDS, Command, add_config_args, register

__all__ = ["COMMANDS", "Command", "register", "add_config_args"]

register(training.RUN)
register(training.SEARCH)
register(training.RETRAIN)
register(training.EVALUATE)
register(nets.INFO)
register(nets.EXPORT)
register(nets.LATENCY)
register(folders.REPORT)
register(pack.PACK)
register(launch.LAUNCH)
register(doctor.DOCTOR)
register(study.STUDY)
register(search_check.SEARCH_CHECK)
register(lambda_noise.LAMBDA_NOISE)
register(baseline.BASELINE)
register(folders.PLOT)
register(genotype.IMPORT_GENOTYPE)
register(genotype.EXPORT_GENOTYPE)
