"""Other tools' on-disk layouts, read and written exactly (uint8, lossless, atomic): the APBench / ISS PNG folder
(``png_folder``), the AVATAR npz (``avatar_npz``) and class folders (``class_folders``). This project's own format
is ``data.stored``; ``data.formats`` tells them apart."""
