from django.contrib import admin

# koherent 0.2.0's admin class; this version keeps the name (with a DeprecationWarning).
from koherent.admin import KoherentAdmin
from shelf.models import Book, Library

admin.site.register(Library, KoherentAdmin)
admin.site.register(Book, KoherentAdmin)
