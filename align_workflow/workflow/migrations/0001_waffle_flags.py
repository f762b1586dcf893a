from django.db import migrations

FLAGS = {
    "initiate-align-order": "Gates 'Send to Align' (create patient, order, asset upload).",
    "set-align-order-status": "Gates ClinCheck revision requests and acceptances sent to Align.",
}


def create_flags(apps, schema_editor):
    Flag = apps.get_model("waffle", "Flag")
    for name, note in FLAGS.items():
        # Off until someone turns it on (the demo data turns both on).
        Flag.objects.get_or_create(name=name, defaults={"everyone": False, "note": note})


def remove_flags(apps, schema_editor):
    apps.get_model("waffle", "Flag").objects.filter(name__in=FLAGS).delete()


class Migration(migrations.Migration):
    dependencies = [("waffle", "0004_update_everyone_nullbooleanfield")]
    operations = [migrations.RunPython(create_flags, remove_flags)]
