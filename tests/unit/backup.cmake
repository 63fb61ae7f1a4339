# Backups (server/backup_tar.c, server/backup.c): the archive's format with every refusal case.
pw_unit_test(backup_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/backup_test.c
             LIBS pw_backup_tar ${MBEDCRYPTO_LIB})
