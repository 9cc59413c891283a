/* Classic-exercise-style shared memory reader: prints the uint8_t at the start.
 * usage: shm_reader /name */
#define _XOPEN_SOURCE 500
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char *argv[]) {
    if (argc != 2) { fprintf(stderr, "usage: %s /name\n", argv[0]); return 2; }
    int fd = shm_open(argv[1], O_RDWR, 0600);
    if (fd == -1) { perror("shm_open"); return 1; }
    if (ftruncate(fd, sizeof(uint8_t)) == -1) { perror("ftruncate"); return 1; }
    uint8_t *p = mmap(NULL, sizeof *p, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) { perror("mmap"); return 1; }
    printf("%d\n", *p);
    return 0;
}
