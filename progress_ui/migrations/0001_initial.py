from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="ProgressSessions",
            fields=[
                (
                    "id",
                    models.AutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
            ],
            options={
                "verbose_name": "progress sessions",
                "verbose_name_plural": "progress sessions",
                "permissions": [
                    ("manage_progress_sessions", "Can see and cancel every progress session")
                ],
                "managed": False,
                "default_permissions": (),
            },
        ),
    ]
